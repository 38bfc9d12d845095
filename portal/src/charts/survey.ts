// The readiness survey's pure logic: statements grouped by domain, the answer scale's anchors, what is
// answered, and the server's field errors (`answers.<item key>`) placed on their statements.

export interface SurveyDomain {
  key: string;
  label: string;
  description: string;
}

export interface SurveyItem {
  key: string;
  domain: string;
  text: string;
}

export interface SurveyInstrument {
  domains: SurveyDomain[];
  items: SurveyItem[];
  scaleMin: number;
  scaleMax: number;
}

export interface DomainGroup {
  domain: SurveyDomain;
  items: SurveyItem[];
}

export type Answers = Record<string, number>;

export interface RoundLike {
  id: string;
  status: string;
  openedAt: string;
}

/** The rounds still taking answers, newest first (the service allows one, but the page copes with more). */
export function openRounds<R extends RoundLike>(rounds: readonly R[]): R[] {
  return rounds.filter((r) => r.status === "open").sort((a, b) => b.openedAt.localeCompare(a.openedAt));
}

/** Statements grouped by their domain, in the instrument's order; a statement of an unknown domain is kept. */
export function groupByDomain(instrument: Pick<SurveyInstrument, "domains" | "items">): DomainGroup[] {
  const groups = new Map<string, DomainGroup>();
  for (const d of instrument.domains) groups.set(d.key, { domain: d, items: [] });
  for (const item of instrument.items) {
    let g = groups.get(item.domain);
    if (!g) {
      g = { domain: { key: item.domain, label: humanize(item.domain), description: "" }, items: [] };
      groups.set(item.domain, g);
    }
    g.items.push(item);
  }
  return [...groups.values()].filter((g) => g.items.length > 0);
}

function humanize(key: string): string {
  const words = key.replace(/[_-]+/g, " ").trim();
  return words ? words[0].toUpperCase() + words.slice(1) : "Other";
}

export interface Anchor {
  value: number;
  label: string;
}

// A five-point agreement scale's usual anchors; other scales name only their ends.
const FIVE = ["Strongly disagree", "Disagree", "Neither agree nor disagree", "Agree", "Strongly agree"];

/** One radio per point of the scale, each with its words, so nobody has to guess what 1 or 5 means. */
export function scaleAnchors(min: number, max: number): Anchor[] {
  if (!Number.isInteger(min) || !Number.isInteger(max) || max < min) return [];
  const out: Anchor[] = [];
  for (let v = min; v <= max; v++) {
    let label = "";
    if (max - min === 4) label = FIVE[v - min];
    else if (v === min) label = "Strongly disagree";
    else if (v === max) label = "Strongly agree";
    out.push({ value: v, label });
  }
  return out;
}

/** The `answers` JSON of myAnswers as item key -> whole number; anything else is dropped. */
export function parseAnswers(raw: unknown): Answers {
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) return {};
  const out: Answers = {};
  for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
    if (typeof v === "number" && Number.isInteger(v)) out[k] = v;
  }
  return out;
}

/** Only the answers to this instrument's statements and within its scale: what the page sends. */
export function answersToSend(instrument: SurveyInstrument, answers: Answers): Answers {
  const keys = new Set(instrument.items.map((i) => i.key));
  const out: Answers = {};
  for (const [k, v] of Object.entries(answers)) {
    if (keys.has(k) && v >= instrument.scaleMin && v <= instrument.scaleMax) out[k] = v;
  }
  return out;
}

export interface Completeness {
  answered: number;
  total: number;
  /** Statements with no answer yet, in the instrument's order. */
  missing: string[];
  complete: boolean;
}

export function completeness(instrument: Pick<SurveyInstrument, "items" | "scaleMin" | "scaleMax">,
                             answers: Answers): Completeness {
  const missing: string[] = [];
  let answered = 0;
  for (const item of instrument.items) {
    const v = answers[item.key];
    if (typeof v === "number" && v >= instrument.scaleMin && v <= instrument.scaleMax) answered++;
    else missing.push(item.key);
  }
  const total = instrument.items.length;
  return { answered, total, missing, complete: total > 0 && answered === total };
}

/** True when the answers differ from what was saved (so the save button says there is something to save). */
export function changed(saved: Answers, current: Answers): boolean {
  const keys = new Set([...Object.keys(saved), ...Object.keys(current)]);
  for (const k of keys) if (saved[k] !== current[k]) return true;
  return false;
}

export interface PlacedErrors {
  /** Item key -> the server's message for it. */
  byItem: Record<string, string>;
  /** Messages no statement can show (e.g. "answer at least one item", or a key the page does not know). */
  general: string[];
}

/** The server's field errors, whose paths are `answers.<item key>` (JSON keys are kept verbatim). */
export function placeAnswerErrors(fields: readonly { path: string | null; message: string }[],
                                  itemKeys: readonly string[]): PlacedErrors {
  const known = new Set(itemKeys);
  const byItem: Record<string, string> = {};
  const general: string[] = [];
  for (const f of fields) {
    const key = f.path?.startsWith("answers.") ? f.path.slice("answers.".length) : null;
    if (key && known.has(key)) byItem[key] = byItem[key] ? `${byItem[key]} ${f.message}` : f.message;
    else general.push(f.message);
  }
  return { byItem, general };
}

/** The privacy note's floor sentence, for the round's own minimum number of respondents. */
export function privacyFloor(minRespondents: number): string {
  const n = Math.max(1, Math.floor(minRespondents));
  return `Results for a domain appear only when at least ${n} ${n === 1 ? "person" : "people"} answered it; ` +
    "below that the domain shows \u201cinsufficient respondents\u201d instead of figures.";
}
