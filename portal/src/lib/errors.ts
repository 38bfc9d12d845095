// Errors from the gateway: a service's problem+json travels in a GraphQL error's extensions.
import type { CombinedError } from "urql";

export interface FieldError {
  path: string | null;
  message: string;
  code?: string;
}

export interface Problem {
  message: string;
  code?: string;
  fields: FieldError[];
}

export function toProblem(error: CombinedError | undefined | null): Problem | null {
  if (!error) return null;
  if (error.networkError) {
    return { message: "Trellis cannot be reached. Check your connection and try again.", fields: [] };
  }
  const fields: FieldError[] = [];
  let code: string | undefined;
  for (const e of error.graphQLErrors) {
    const ext = e.extensions as { code?: string; errors?: FieldError[] } | undefined;
    code ??= ext?.code;
    for (const f of ext?.errors ?? []) fields.push(f);
  }
  const message = error.graphQLErrors.map((e) => e.message).join(" ") || error.message;
  return { message, code, fields };
}

/** The message for one input path (e.g. `input.scores[2].score`), if the server named it. */
export function fieldMessage(problem: Problem | null, path: string): string | undefined {
  return problem?.fields.find((f) => f.path === path)?.message;
}

/** Field errors the form cannot place next to a field: shown in the summary. */
export function unplaced(problem: Problem | null, placed: (path: string) => boolean): FieldError[] {
  return (problem?.fields ?? []).filter((f) => !f.path || !placed(f.path));
}
