// Loading, empty and error states, announced to screen readers.
import type { ReactNode } from "react";
import type { CombinedError } from "urql";
import { toProblem } from "../lib/errors";

export function Loading({ what }: { what: string }) {
  return (
    <p className="state loading" role="status" aria-live="polite">
      <span className="spinner" aria-hidden="true" /> Loading {what}…
    </p>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <p className="state empty">{children}</p>;
}

export function ErrorBox({ error, children }: { error?: CombinedError | null; children?: ReactNode }) {
  const problem = toProblem(error);
  if (!problem && !children) return null;
  return (
    <div className="state error" role="alert">
      {children ?? problem?.message}
    </div>
  );
}
