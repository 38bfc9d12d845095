// Pure mapping for the agency overview: stage names, readiness bars, the certified share series, plan actions and
// turnover. No React and no ECharts instance here, so every rule is testable without a browser.
import type { EChartsCoreOption } from "echarts/core";

export const INSUFFICIENT = "Insufficient respondents";

// DOMAIN.md: Exploration → Installation → Initial Implementation → Full Implementation (→ Sustainment).
export const STAGES = [
  "exploration",
  "installation",
  "initial_implementation",
  "full_implementation",
  "sustainment",
] as const;

const STAGE_WORDS: Record<string, string> = {
  exploration: "Exploration",
  installation: "Installation",
  initial_implementation: "Initial Implementation",
  full_implementation: "Full Implementation",
  sustainment: "Sustainment",
};

/** A stage in plain words; an unknown key is shown readable rather than hidden. */
export function stageLabel(stage: string | null | undefined): string {
  if (!stage) return "";
  return STAGE_WORDS[stage] ?? capitalise(stage.replace(/_/g, " "));
}

function capitalise(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** A 0-1 share as a whole percent ("38%"), or an em dash when unknown. */
export function pct(share: number | null | undefined, digits = 0): string {
  return share == null ? "—" : `${(share * 100).toFixed(digits)}%`;
}

/** A value already in percent (0-100). */
export function pct100(value: number | null | undefined, digits = 0): string {
  return value == null ? "—" : `${value.toFixed(digits)}%`;
}

// ---- the stage timeline ------------------------------------------------------------------------

export interface StageEntryIn {
  stage: string;
  previousStage?: string | null;
  enteredOn: string;
  reason: string;
  certifiedShare?: number | null;
}

export interface StageStep {
  key: string;
  label: string;
  state: "done" | "current" | "ahead";
  enteredOn: string | null;
}

/** The five stages in order, each marked passed, current or ahead, with the date it was (last) entered. */
export function stageSteps(current: string, history: StageEntryIn[]): StageStep[] {
  const at = STAGES.indexOf(current as (typeof STAGES)[number]);
  const entered = new Map<string, string>();
  for (const h of history) entered.set(h.stage, h.enteredOn); // oldest first: the last entry wins
  return STAGES.map((key, i) => ({
    key,
    label: stageLabel(key),
    state: at < 0 ? "ahead" : i < at ? "done" : i === at ? "current" : "ahead",
    enteredOn: entered.get(key) ?? null,
  }));
}

export interface StageRow {
  label: string;
  from: string;
  enteredOn: string;
  reason: string;
  share: string;
}

/** The stage history as rows, newest first (what people ask first: how did we get here). */
export function stageRows(history: StageEntryIn[]): StageRow[] {
  return [...history]
    .sort((a, b) => b.enteredOn.localeCompare(a.enteredOn))
    .map((h) => ({
      label: stageLabel(h.stage),
      from: h.previousStage ? stageLabel(h.previousStage) : "—",
      enteredOn: h.enteredOn,
      reason: capitalise(h.reason),
      share: pct(h.certifiedShare ?? null),
    }));
}

// ---- readiness -----------------------------------------------------------------------------------

export interface DomainResultIn {
  key: string;
  status: string;
  respondents: number;
  mean?: number | null;
  spread?: number | null;
  agreement?: number | null;
}

export interface PolicyIn {
  readyAt: number;
  conditionsAt: number;
  minRespondents: number;
}

export interface DomainBar {
  key: string;
  label: string;
  status: "ok" | "gap" | "insufficient";
  statusLabel: string;
  respondents: number;
  /** null for insufficient domains: the privacy floor hides every figure, not just the mean */
  mean: number | null;
  spread: number | null;
  agreement: number | null;
  /** The axis label: the domain, plus "Insufficient respondents" where it has no value */
  axisLabel: string;
}

const STATUS_WORDS: Record<string, string> = { ok: "Ready", gap: "Gap", insufficient: INSUFFICIENT };

/** One bar per domain. Insufficient domains carry no number at all, whatever the server sent. */
export function readinessBars(results: DomainResultIn[], labels: Record<string, string> = {}): DomainBar[] {
  return results.map((r) => {
    const status = r.status === "insufficient" ? "insufficient" : r.status === "gap" ? "gap" : "ok";
    const label = domainLabel(r.key, labels);
    const hidden = status === "insufficient";
    return {
      key: r.key,
      label,
      status,
      statusLabel: STATUS_WORDS[status],
      respondents: r.respondents,
      mean: hidden ? null : (r.mean ?? null),
      spread: hidden ? null : (r.spread ?? null),
      agreement: hidden ? null : (r.agreement ?? null),
      axisLabel: hidden ? `${label}\n(${INSUFFICIENT})` : status === "gap" ? `${label}\n(Gap)` : label,
    };
  });
}

export interface RoundDomainsIn {
  instrument?: { domains: { key: string; label: string }[] } | null;
}

/** Domain key → the instrument's name for it, over the given rounds (a later round's wording wins). */
export function domainLabels(rounds: RoundDomainsIn[]): Record<string, string> {
  return Object.fromEntries(rounds.flatMap((r) => (r.instrument?.domains ?? []).map((d) => [d.key, d.label])));
}

/** A domain key in words: the instrument's label, else the key made readable ("data_systems" → "Data systems"). */
export function domainLabel(key: string, labels: Record<string, string>): string {
  return labels[key] ?? capitalise(key.replace(/_/g, " "));
}

/** A readiness reason from the service ("gaps (below 4): data_systems, leadership") with each known domain key
 *  replaced by its label, whole keys only, so a key inside another word or key is left alone. */
export function reasonWords(reason: string, labels: Record<string, string>): string {
  const keys = Object.keys(labels).sort((a, b) => b.length - a.length); // longest first: no partial swaps
  if (keys.length === 0) return capitalise(reason);
  const escaped = keys.map((k) => k.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  const pattern = new RegExp(`\\b(${escaped.join("|")})\\b`, "g"); // "_" is a word character: whole keys only
  return capitalise(reason.replace(pattern, (k) => labels[k] ?? k));
}

// Colours with at least 3:1 contrast against white (WCAG 1.4.11 for graphics).
export const COLOURS = { ok: "#1a6b3c", gap: "#b00020", accent: "#0b5cad", line: "#8a4b00", muted: "#4a5468" };

/** Horizontal bars of each domain's mean on the answer scale, with the "ready" and "conditions" lines. */
export function readinessOption(bars: DomainBar[], policy: PolicyIn, scale: { min: number; max: number }):
  EChartsCoreOption {
  return {
    grid: { left: 8, right: 24, top: 32, bottom: 8, containLabel: true },
    tooltip: { trigger: "axis", confine: true, axisPointer: { type: "shadow" } },
    xAxis: { type: "value", min: scale.min, max: scale.max, name: "Mean", nameLocation: "middle", nameGap: 24 },
    yAxis: {
      type: "category",
      inverse: true,
      data: bars.map((b) => b.axisLabel),
      // An explicit line height: wrapped SVG labels otherwise overlap their own second line.
      axisLabel: { width: 140, overflow: "break", lineHeight: 14, color: COLOURS.muted },
    },
    series: [
      {
        type: "bar",
        name: "Domain mean",
        // Insufficient domains stay null: no bar and no number, only their axis label.
        data: bars.map((b) => ({
          value: b.mean,
          itemStyle: { color: b.status === "gap" ? COLOURS.gap : COLOURS.ok },
        })),
        label: { show: true, position: "right", formatter: (p: { value: number | null }) =>
          p.value == null ? "" : p.value.toFixed(2) },
        markLine: {
          symbol: "none",
          silent: true,
          data: [
            { xAxis: policy.readyAt, name: "Ready", lineStyle: { color: COLOURS.ok, type: "dashed" },
              label: { formatter: `Ready ${policy.readyAt}`, position: "end" } },
            { xAxis: policy.conditionsAt, name: "Conditions", lineStyle: { color: COLOURS.line, type: "dotted" },
              label: { formatter: `Conditions ${policy.conditionsAt}`, position: "start" } },
          ],
        },
      },
    ],
  };
}

// ---- the certified share over time ---------------------------------------------------------------

export interface SharePointIn {
  month: string;
  on: string;
  active: number;
  certified: number;
  certifiedPercent?: number | null;
}

export interface ShareSeries {
  months: string[];
  /** percent 0-100, null where nobody was counted */
  percents: (number | null)[];
  /** the Full Implementation line, in percent */
  line: number;
  rows: (SharePointIn & { percent: string; meetsLine: boolean })[];
  /** the latest known point reaches the line */
  reached: boolean;
}

export function shareSeries(points: SharePointIn[], fullImplementationPercent = 50): ShareSeries {
  const sorted = [...points].sort((a, b) => a.month.localeCompare(b.month));
  const percents = sorted.map((p) => p.certifiedPercent ?? null);
  const known = percents.filter((p): p is number => p != null);
  return {
    months: sorted.map((p) => p.month),
    percents,
    line: fullImplementationPercent,
    rows: sorted.map((p) => ({
      ...p,
      percent: pct100(p.certifiedPercent ?? null, 1),
      meetsLine: p.certifiedPercent != null && p.certifiedPercent >= fullImplementationPercent,
    })),
    reached: known.length > 0 && known[known.length - 1] >= fullImplementationPercent,
  };
}

export function shareOption(s: ShareSeries): EChartsCoreOption {
  return {
    grid: { left: 8, right: 16, top: 32, bottom: 8, containLabel: true },
    tooltip: { trigger: "axis", confine: true, valueFormatter: (v: number | null) => (v == null ? "—" : `${v}%`) },
    xAxis: { type: "category", data: s.months, axisLabel: { color: COLOURS.muted } },
    yAxis: { type: "value", min: 0, max: 100, axisLabel: { formatter: "{value}%", color: COLOURS.muted } },
    series: [
      {
        type: "line",
        name: "Certified share",
        data: s.percents,
        connectNulls: false,
        symbolSize: 8,
        lineStyle: { color: COLOURS.accent, width: 3 },
        itemStyle: { color: COLOURS.accent },
        markLine: {
          symbol: "none",
          silent: true,
          lineStyle: { color: COLOURS.line, type: "dashed", width: 2 },
          label: { formatter: `Full Implementation ${s.line}%`, position: "insideEndTop", color: COLOURS.line },
          data: [{ yAxis: s.line, name: "Full Implementation" }],
        },
      },
    ],
  };
}

// ---- the plan's actions --------------------------------------------------------------------------

export interface ActionIn {
  id: string;
  title: string;
  status: string;
  dueOn?: string | null;
  overdue: boolean;
  readinessDomain?: string | null;
  origin?: string;
  completedOn?: string | null;
}

export interface ActionRow extends ActionIn {
  statusLabel: string;
  /** "Overdue" on actions past their due date and still open; null otherwise */
  marker: string | null;
  /** can still be marked done */
  completable: boolean;
}

const ACTION_WORDS: Record<string, string> = {
  open: "Open", in_progress: "In progress", done: "Done", dropped: "Dropped",
};
const ACTION_ORDER: Record<string, number> = { open: 1, in_progress: 1, done: 2, dropped: 3 };

/** Overdue first, then the rest still to do (by due date, undated last), then done and dropped. */
export function actionRows(actions: ActionIn[]): ActionRow[] {
  const rank = (a: ActionRow) => (a.marker ? 0 : ACTION_ORDER[a.status] ?? 4);
  return [...actions]
    .map((a): ActionRow => ({
      ...a,
      statusLabel: ACTION_WORDS[a.status] ?? capitalise(a.status.replace(/_/g, " ")),
      // The service decides overdue; a done or dropped action is never marked, even if a stale flag says so.
      marker: a.overdue && (a.status === "open" || a.status === "in_progress") ? "Overdue" : null,
      completable: a.status === "open" || a.status === "in_progress",
    }))
    .sort((a, b) => rank(a) - rank(b) || (a.dueOn ?? "9999").localeCompare(b.dueOn ?? "9999")
      || a.title.localeCompare(b.title));
}

// ---- turnover ------------------------------------------------------------------------------------

export interface TeamTurnoverIn {
  teamId?: string | null;
  teamName: string;
  active: number;
  joined12m: number;
  left12m: number;
  newStaffShare?: number | null;
  turnoverRate?: number | null;
}

/** Per-team bars of active staff, joined and left in 12 months (counts read plainly; rates sit in the table). */
export function turnoverOption(teams: TeamTurnoverIn[]): EChartsCoreOption {
  return {
    grid: { left: 8, right: 16, top: 32, bottom: 8, containLabel: true },
    legend: { top: 0 },
    tooltip: { trigger: "axis", confine: true, axisPointer: { type: "shadow" } },
    xAxis: { type: "value", minInterval: 1 },
    yAxis: { type: "category", inverse: true, data: teams.map((t) => t.teamName),
      axisLabel: { width: 120, overflow: "break", lineHeight: 14, color: COLOURS.muted } },
    series: [
      { type: "bar", name: "Active now", data: teams.map((t) => t.active),
        itemStyle: { color: COLOURS.muted } },
      { type: "bar", name: "Joined (12 months)", data: teams.map((t) => t.joined12m),
        itemStyle: { color: COLOURS.accent } },
      { type: "bar", name: "Left (12 months)", data: teams.map((t) => t.left12m),
        itemStyle: { color: COLOURS.line } },
    ],
  };
}
