// The roster import's pure logic: the service's row errors (problem+json, carried in the GraphQL error's
// extensions.problem.errors) as a table by row, the file's rows for context, and the staff table's order.

/** One refusal of the file, as the readiness service words it: `line` counts CSV records, the header is 1. */
export interface RowError {
  line: number;
  column: string | null;
  message: string;
}

export interface RowErrorGroup {
  line: number;
  /** The row as it was in the file, for recognising it (empty when the file has no such row). */
  content: string;
  problems: { column: string | null; message: string }[];
}

interface ErrorLike {
  extensions?: Record<string, unknown> | null;
}

/** The row errors of a refused import, from each GraphQL error's `extensions.problem.errors`. */
export function rowErrorsFrom(errors: readonly ErrorLike[] | null | undefined): RowError[] {
  const out: RowError[] = [];
  for (const e of errors ?? []) {
    const problem = e.extensions?.problem;
    if (!problem || typeof problem !== "object") continue;
    const list = (problem as { errors?: unknown }).errors;
    if (!Array.isArray(list)) continue;
    for (const raw of list) {
      if (!raw || typeof raw !== "object") continue;
      const r = raw as Record<string, unknown>;
      const line = typeof r.line === "number" ? r.line : lineFromPointer(r.pointer);
      out.push({
        line: line ?? 0,
        column: typeof r.column === "string" && r.column ? r.column : null,
        message: typeof r.message === "string" ? r.message : String(r.message ?? "invalid"),
      });
    }
  }
  return out.sort((a, b) => a.line - b.line);
}

function lineFromPointer(pointer: unknown): number | null {
  const m = typeof pointer === "string" ? /^#\/line\/(\d+)$/.exec(pointer) : null;
  return m ? Number(m[1]) : null;
}

/** The file's records as written (a quoted cell may hold a line break), so record N can be shown. */
export function csvRecords(text: string): string[] {
  const out: string[] = [];
  let start = 0;
  let quoted = false;
  const s = text.replace(/^\ufeff/, "");
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '"') quoted = !quoted; // an escaped "" toggles twice, which is right
    else if (!quoted && (c === "\n" || c === "\r")) {
      out.push(s.slice(start, i));
      if (c === "\r" && s[i + 1] === "\n") i++;
      start = i + 1;
    }
  }
  if (start < s.length) out.push(s.slice(start));
  return out;
}

/** Row errors grouped by row, in file order, each with the row's text. */
export function groupRowErrors(errors: readonly RowError[], csv: string): RowErrorGroup[] {
  const records = csvRecords(csv);
  const groups = new Map<number, RowErrorGroup>();
  for (const e of errors) {
    let g = groups.get(e.line);
    if (!g) {
      g = { line: e.line, content: records[e.line - 1] ?? "", problems: [] };
      groups.set(e.line, g);
    }
    g.problems.push({ column: e.column, message: e.message });
  }
  return [...groups.values()].sort((a, b) => a.line - b.line);
}

export interface ImportFigures {
  dryRun: boolean;
  rows: number;
  created: number;
  updated: number;
  unchanged: number;
}

/** One sentence for the preview or the import's result. */
export function importSummary(r: ImportFigures): string {
  const parts = `${r.rows} ${r.rows === 1 ? "row" : "rows"}: ${r.created} new, ${r.updated} updated, ` +
    `${r.unchanged} unchanged`;
  return r.dryRun ? `Preview — ${parts}. Nothing has been imported yet.` : `Imported — ${parts}.`;
}

/** True when importing would change nothing (so the Import button is not offered). */
export function nothingToImport(r: ImportFigures): boolean {
  return r.created === 0 && r.updated === 0;
}

export const ROSTER_COLUMNS: { name: string; required: boolean; what: string }[] = [
  { name: "name", required: true, what: "The person's full name (at most 200 characters)." },
  { name: "email", required: true, what: "Their work email; rows are matched by email, so re-importing a file changes nothing." },
  { name: "roles", required: true,
    what: "One or more of agency_admin, supervisor, coach, practitioner, observer, facilitator, partner, separated by ';'." },
  { name: "team", required: false, what: "The name of one of the agency's teams; empty for no team." },
  { name: "hire_date", required: false, what: "YYYY-MM-DD, not in the future; default today." },
  { name: "id", required: false, what: "The person's sign-in id (a UUID) from the identity provider." },
];

export interface StaffLike {
  id: string;
  name: string;
  status: string;
}

/** Active people first, then by name. */
export function sortStaff<S extends StaffLike>(staff: readonly S[]): S[] {
  return [...staff].sort((a, b) =>
    (a.status === "active" ? 0 : 1) - (b.status === "active" ? 0 : 1) || a.name.localeCompare(b.name));
}
