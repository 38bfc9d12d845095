// The observation form's pure logic: choices from an item's scale, the running total (the fidelity service's
// own scoring, services/fidelity/domain.py `score`), server error paths → form fields, and the retry-safe
// Idempotency-Key. No React, no network: tested with vitest.

export interface FormItem {
  key: string;
  label: string;
  competency: string;
  scaleMin: number;
  scaleMax: number;
  critical: boolean;
  criticalMin: number;
  required: boolean;
  weight: number;
}

export interface FormInstrument {
  passThreshold: number;
  competencies: string[];
  items: FormItem[];
}

/** Item key → chosen score; an item not chosen yet is absent. */
export type Scores = Record<string, number>;

export interface Choice {
  value: number;
  label: string;
}

/** One radio per point of the item's scale, lowest first; the ends say which way is better. */
export function scaleChoices(item: Pick<FormItem, "scaleMin" | "scaleMax">): Choice[] {
  const out: Choice[] = [];
  for (let v = item.scaleMin; v <= item.scaleMax; v++) {
    const end = v === item.scaleMin ? " (lowest)" : v === item.scaleMax ? " (highest)" : "";
    out.push({ value: v, label: `${v}${end}` });
  }
  return out;
}

/** The instrument's items in fieldsets, one per competency, in the instrument's order. */
export function groupByCompetency(instrument: FormInstrument): { competency: string; items: FormItem[] }[] {
  const order = [...instrument.competencies];
  for (const i of instrument.items) if (!order.includes(i.competency)) order.push(i.competency);
  return order
    .map((competency) => ({ competency, items: instrument.items.filter((i) => i.competency === competency) }))
    .filter((g) => g.items.length > 0);
}

/** Python's round(x, 2): correctly rounded on the double's exact value, ties to even. */
export function round2(x: number): number {
  const hundred = x * 100;
  // An exact tie (x = n + 0.005 exactly) is only possible for multiples of 1/8, where x * 100 is exact too.
  if (Number.isInteger(x * 8) && Math.abs(hundred % 1) === 0.5) {
    const down = Math.floor(hundred);
    return (down % 2 === 0 ? down : down + 1) / 100;
  }
  return Number(x.toFixed(2)); // toFixed rounds the exact decimal value, like Python
}

function percent(got: number, span: number): number {
  return span ? round2((100.0 * got) / span) : 100.0;
}

export interface RunningTotal {
  /** Weighted percentage of the maximum over the items scored so far; null before any item is scored. */
  total: number | null;
  competencies: Record<string, number>;
  passThreshold: number;
  /** Whether the scores so far would pass: at or above the threshold, and no critical item below its minimum. */
  passing: boolean;
  criticalBelowMin: string[];
  scored: number;
  items: number;
  /** Required items not scored yet: the service refuses the observation without them. */
  missingRequired: string[];
}

/** The same total, competency scores and pass as the fidelity service computes (domain.score). */
export function runningTotal(instrument: FormInstrument, scores: Scores): RunningTotal {
  let gotTotal = 0;
  let spanTotal = 0;
  const byComp = new Map<string, [number, number]>();
  for (const c of instrument.competencies) byComp.set(c, [0, 0]);
  const critical: string[] = [];
  let scored = 0;
  for (const item of instrument.items) {
    const value = scores[item.key];
    if (value === undefined) continue;
    scored++;
    const span = item.scaleMax - item.scaleMin;
    const got = (value - item.scaleMin) * item.weight;
    gotTotal += got;
    spanTotal += span * item.weight;
    const comp = byComp.get(item.competency) ?? [0, 0];
    comp[0] += got;
    comp[1] += span * item.weight;
    byComp.set(item.competency, comp);
    if (item.critical && value < item.criticalMin) critical.push(item.key);
  }
  const competencies: Record<string, number> = {};
  for (const [c, [g, s]] of byComp) if (s) competencies[c] = percent(g, s);
  const total = scored ? percent(gotTotal, spanTotal) : null;
  return {
    total,
    competencies,
    passThreshold: instrument.passThreshold,
    passing: total !== null && total >= instrument.passThreshold && critical.length === 0,
    criticalBelowMin: critical,
    scored,
    items: instrument.items.length,
    missingRequired: instrument.items.filter((i) => i.required && scores[i.key] === undefined).map((i) => i.key),
  };
}

/** The scores as the API takes them, in the instrument's order (which the server's error paths index). */
export function scoreList(instrument: FormInstrument, scores: Scores): { item: string; score: number }[] {
  return instrument.items.filter((i) => scores[i.key] !== undefined).map((i) => ({ item: i.key, score: scores[i.key] }));
}

// ---- server errors → fields --------------------------------------------------------------------

/** A form field an error belongs to: `item:<key>` for one item's radio group, else the input's name. */
export type FieldKey = string;

export const itemField = (key: string): FieldKey => `item:${key}`;

/**
 * The form field for a GraphQL input path from the gateway (gateway/clients.py `Inputs`), or null when the
 * form has no such field (the error then goes only to the summary). `sent` is the scores list as sent: the
 * gateway names a score by its index there (`input.scores[2].score`). `root` is "input" for recordObservation
 * and "" for calibrate, whose scores are a top-level argument.
 */
export function fieldForPath(path: string | null | undefined, sent: { item: string }[], root = "input"): FieldKey | null {
  if (!path) return null;
  const prefix = root ? `${root}.` : "";
  if (!path.startsWith(prefix)) return null;
  const rest = path.slice(prefix.length);
  const score = /^scores\[(\d+)\](?:\.score|\.item)?$/.exec(rest);
  if (score) {
    const sentItem = sent[Number(score[1])];
    return sentItem ? itemField(sentItem.item) : null;
  }
  const top = /^([A-Za-z]+)$/.exec(rest);
  return top ? top[1] : null;
}

export interface PlacedError {
  field: FieldKey | null;
  message: string;
}

/** Each server field error with the form field it belongs to (null: the summary only). */
export function placeErrors(errors: { path: string | null; message: string }[], sent: { item: string }[],
                            fields: Set<FieldKey>, root = "input"): PlacedError[] {
  return errors.map((e) => {
    const field = fieldForPath(e.path, sent, root);
    return { field: field && fields.has(field) ? field : null, message: e.message };
  });
}

// ---- Idempotency-Key ---------------------------------------------------------------------------

export interface KeyState {
  key: string;
  /** The content the key was made for. */
  content: string;
}

/** A stable text of a request's content (object keys sorted), to tell a retry from a changed form. */
export function fingerprint(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => {
    if (v && typeof v === "object" && !Array.isArray(v)) {
      return Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b)));
    }
    return v;
  });
}

/**
 * The key for submitting `content`: the same key while the content is the same (a retry after a network
 * error must not record twice), a new one when it changed. After a success, pass `null` as `current`
 * (see `afterSuccess`), so the next observation gets a new key even with identical content.
 */
export function keyFor(current: KeyState | null, content: string, make: () => string): KeyState {
  if (current && current.content === content) return current;
  return { key: make(), content };
}

/** After a success the key is spent: the next submit, even of the same content, is a new observation. */
export function afterSuccess(): KeyState | null {
  return null;
}

// ---- settings and kinds (services/fidelity/domain.py SETTINGS, OBSERVATION_KINDS, kind_fits) -------------

export const SETTINGS = ["team_meeting", "home_visit", "office", "community", "virtual", "recording"] as const;

/** The observation kinds an instrument accepts: record reviews score records, the others score practice. */
export function kindsFor(instrumentKind: string): string[] {
  return instrumentKind === "record_review" ? ["record_review"] : ["live_observation", "recording_review"];
}

/** "team_meeting" → "Team meeting". */
export function humanize(code: string): string {
  const words = code.replace(/_/g, " ");
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/** Today in the observer's own time zone, as YYYY-MM-DD (the date input's format). */
export function localDate(d: Date = new Date()): string {
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}
