// A case text split into plain and highlighted segments from the screening findings.
// The service counts offsets in Unicode code points (Python str indices); JavaScript strings are UTF-16, so the
// text is split by code point first. Findings may overlap (a date inside an address): each segment lists every
// finding that covers it, so nothing is highlighted twice or lost.

export interface SpanFinding {
  id: string;
  start: number;
  end: number;
  kind: string;
  status?: string;
}

export interface Segment<F extends SpanFinding> {
  text: string;
  start: number; // code points
  end: number;
  findings: F[]; // empty for plain text
}

export function segments<F extends SpanFinding>(text: string, findings: readonly F[]): Segment<F>[] {
  const points = Array.from(text);
  const n = points.length;
  const valid = findings.filter((f) => Number.isInteger(f.start) && Number.isInteger(f.end) && f.start < f.end &&
    f.start < n && f.end > 0);
  const cuts = new Set<number>([0, n]);
  for (const f of valid) {
    cuts.add(Math.max(0, f.start));
    cuts.add(Math.min(n, f.end));
  }
  const bounds = [...cuts].sort((a, b) => a - b);
  const out: Segment<F>[] = [];
  for (let i = 0; i + 1 < bounds.length; i++) {
    const start = bounds[i];
    const end = bounds[i + 1];
    const covering = valid.filter((f) => f.start <= start && f.end >= end);
    const last = out[out.length - 1];
    const piece = points.slice(start, end).join("");
    // Neighbouring plain pieces, or pieces with the same findings, are one segment.
    if (last && sameFindings(last.findings, covering)) {
      last.text += piece;
      last.end = end;
    } else {
      out.push({ text: piece, start, end, findings: covering });
    }
  }
  return out;
}

function sameFindings(a: readonly SpanFinding[], b: readonly SpanFinding[]): boolean {
  return a.length === b.length && a.every((f, i) => f.id === b[i].id);
}

const KIND_LABELS: Record<string, string> = {
  name: "name",
  date: "date",
  phone: "phone number",
  fax: "fax number",
  email: "email address",
  address: "street address",
  zip: "ZIP code",
  ssn: "Social Security number",
  record_number: "record number",
  account_number: "account number",
  license_number: "licence number",
  vehicle: "vehicle identifier",
  device: "device identifier",
  url: "web address",
  ip: "IP address",
  age_over_89: "age over 89",
  other_id: "identifying number",
  place: "place smaller than a state",
};

export function kindLabel(kind: string): string {
  return KIND_LABELS[kind] ?? kind.replace(/_/g, " ");
}

/** Findings still blocking submission. */
export function openFindings<F extends { status: string }>(findings: readonly F[]): F[] {
  return findings.filter((f) => f.status === "open");
}

const STATE_LABELS: Record<string, string> = {
  draft: "Draft: findings to fix or justify",
  screened: "Screened: ready to submit",
  in_review: "In review by the hub",
  approved: "Approved for the session",
  returned: "Returned by the hub",
  presented: "Presented",
  recommendations_issued: "Recommendations issued",
  follow_up_due: "Follow-up due",
  closed: "Closed",
};

export const CASE_STATES = Object.keys(STATE_LABELS);

const PATH = ["draft", "screened", "in_review", "approved", "presented", "recommendations_issued", "follow_up_due",
  "closed"];

/** The case's way from draft to closed, each step done, current or to come (a returned case is back at review). */
export function caseSteps(state: string): { state: string; label: string; status: "done" | "current" | "todo" }[] {
  const at = state === "returned" ? PATH.indexOf("in_review") : PATH.indexOf(state);
  return PATH.map((s, i) => ({
    state: s === "in_review" && state === "returned" ? "returned" : s,
    label: caseStateLabel(s === "in_review" && state === "returned" ? "returned" : s),
    status: i < at ? "done" : i === at ? "current" : "todo",
  }));
}

export function caseStateLabel(state: string): string {
  return STATE_LABELS[state] ?? state.replace(/_/g, " ");
}

/** Whether the presenter may still edit the texts. */
export function editable(state: string): boolean {
  return state === "draft" || state === "screened" || state === "returned";
}
