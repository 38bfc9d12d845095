// The fidelity control chart as data: a practitioner's series → ECharts option pieces, a sentence for screen
// readers and the rows of the table alternative. Pure, so vitest checks it without a browser.

/** One observation on the series, as `practitioner(id).fidelitySeries` returns it. */
export interface SeriesPoint {
  observationId: string;
  observedOn: string;
  seq: number;
  score: number;
  ewma: number;
  centre: number;
  lowerLimit: number;
  upperLimit: number;
  passThreshold: number;
  /** The drift rule that flags the series at this point, while it is flagged. */
  flagged?: string | null;
}

export const TOTAL = "total";

// The fidelity service's drift rules (services/fidelity/domain.py), in words.
const RULES: Record<string, string> = {
  ewma_below_limit: "EWMA below the lower control limit",
  run_of_declines: "Run of declining scores",
};

/** A drift rule in words; unknown rules still read reasonably. */
export function ruleLabel(rule: string): string {
  return RULES[rule] ?? rule.replace(/_/g, " ").replace(/^./, (c) => c.toUpperCase());
}

/** "total" is the instrument's total score; anything else is a competency's name. */
export function metricLabel(metric: string): string {
  return metric === TOTAL ? "Total score" : metric;
}

/** Colours with at least 3:1 contrast on white; series differ by shape and dash too, not colour alone. */
export const COLOURS = {
  score: "#0b5cad",
  ewma: "#a04a00",
  limit: "#5b6475",
  centre: "#5b6475",
  pass: "#1a6b3c",
  flag: "#b00020",
} as const;

export interface FlaggedPoint {
  index: number;
  observationId: string;
  observedOn: string;
  score: number;
  rule: string;
  ruleLabel: string;
}

export interface LineSeries {
  name: string;
  type: "line";
  data: number[];
  symbol: string;
  showSymbol: boolean;
  step?: "end";
  lineStyle: { color: string; type: "solid" | "dashed" | "dotted"; width: number };
  itemStyle: { color: string };
  z: number;
}

export interface ScatterSeries {
  name: string;
  type: "scatter";
  data: { value: [number, number]; rule?: string }[];
  symbol: string;
  symbolSize: number;
  itemStyle: { color: string; borderColor?: string; borderWidth?: number };
  z: number;
}

// A type alias (not an interface), so it passes where ECharts wants an option with an index signature.
export type ControlChartOption = {
  /** ECharts writes its own aria-label on the chart unless given the description: ours is the sentence. */
  aria: { enabled: true; label: { description: string } };
  grid: Record<string, unknown>;
  legend: Record<string, unknown>;
  tooltip: { trigger: "axis"; formatter: (params: unknown) => string };
  xAxis: { type: "category"; name: string; data: string[]; axisLabel: Record<string, unknown> };
  yAxis: { type: "value"; name: string; min: number; max: number };
  series: (LineSeries | ScatterSeries)[];
};

export interface ControlChart {
  empty: boolean;
  metric: string;
  option: ControlChartOption;
  flags: FlaggedPoint[];
  label: string;
}

export function flaggedPoints(points: SeriesPoint[]): FlaggedPoint[] {
  return points.flatMap((p, index) =>
    p.flagged
      ? [{ index, observationId: p.observationId, observedOn: p.observedOn, score: p.score, rule: p.flagged,
           ruleLabel: ruleLabel(p.flagged) }]
      : [],
  );
}

function line(name: string, data: number[], colour: string, type: LineSeries["lineStyle"]["type"], width: number,
              z: number, step?: "end"): LineSeries {
  return { name, type: "line", data, symbol: "none", showSymbol: false, ...(step ? { step } : {}),
           lineStyle: { color: colour, type, width }, itemStyle: { color: colour }, z };
}

function fmt(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(1);
}

/** The y axis starts a little below everything drawn (in tens), so the movement near the limits shows. */
export function axisFloor(points: SeriesPoint[]): number {
  if (points.length === 0) return 0;
  const lowest = Math.min(...points.flatMap((p) => [p.score, p.ewma, p.lowerLimit, p.passThreshold]));
  return Math.max(0, Math.floor((lowest - 5) / 10) * 10);
}

/** The tooltip for one observation: every value, and the drift rule when the point is flagged. */
export function tooltipText(p: SeriesPoint, metric: string): string {
  const lines = [
    `${p.observedOn} (observation ${p.seq})`,
    `${metricLabel(metric)}: ${fmt(p.score)}`,
    `EWMA: ${fmt(p.ewma)}`,
    `Control limits: ${fmt(p.lowerLimit)}–${fmt(p.upperLimit)} (centre ${fmt(p.centre)})`,
    `Pass line: ${fmt(p.passThreshold)}`,
  ];
  if (p.flagged) lines.push(`Drift flagged: ${ruleLabel(p.flagged)}`);
  return lines.map(escapeHtml).join("<br/>");
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

/** The one-sentence summary a screen reader hears instead of the picture. */
export function controlChartLabel(points: SeriesPoint[], metric: string): string {
  const what = `Fidelity control chart, ${metric === TOTAL ? "total score" : `competency ${metric}`}`;
  if (points.length === 0) return `${what}: no observations yet.`;
  const last = points[points.length - 1]!;
  const flags = flaggedPoints(points);
  const flagText = flags.length === 0
    ? "no drift flags"
    : `${flags.length} point${flags.length === 1 ? "" : "s"} flagged for drift (${[...new Set(flags.map((f) => f.ruleLabel))].join(", ")})`;
  return `${what}: ${points.length} observation${points.length === 1 ? "" : "s"} from ${points[0]!.observedOn} to `
    + `${last.observedOn}; latest score ${fmt(last.score)}, EWMA ${fmt(last.ewma)}, control limits `
    + `${fmt(last.lowerLimit)} to ${fmt(last.upperLimit)}, pass line ${fmt(last.passThreshold)}; ${flagText}.`;
}

/**
 * The chart: scores as points, the EWMA as a line, the control limits and the centre as dashed/dotted lines
 * (per point, so limits that move as the series grows are drawn where they were), the pass line, and the flagged
 * points as red triangles carrying their rule.
 */
export function controlChart(points: SeriesPoint[], metric: string = TOTAL): ControlChart {
  const flags = flaggedPoints(points);
  const name = metricLabel(metric);
  const label = controlChartLabel(points, metric);
  const option: ControlChartOption = {
    aria: { enabled: true, label: { description: label } },
    grid: { left: 8, right: 16, top: 60, bottom: 8, containLabel: true },
    // One scrolling line: a wrapped legend would run into the plot on a phone.
    legend: { top: 0, left: 0, type: "scroll", itemGap: 12 },
    tooltip: {
      trigger: "axis",
      formatter: (params: unknown) => {
        const first = Array.isArray(params) ? params[0] : params;
        const index = (first as { dataIndex?: number } | undefined)?.dataIndex;
        const p = index === undefined ? undefined : points[index];
        return p ? tooltipText(p, metric) : "";
      },
    },
    xAxis: { type: "category", name: "", data: points.map((p) => p.observedOn),
             axisLabel: { hideOverlap: true, color: "#4a5468" } },
    yAxis: { type: "value", name: `${name} (%)`, min: axisFloor(points), max: 100 },
    series: [
      line("Upper limit", points.map((p) => p.upperLimit), COLOURS.limit, "dashed", 1.5, 1, "end"),
      line("Centre", points.map((p) => p.centre), COLOURS.centre, "dotted", 1.5, 1, "end"),
      line("Lower limit", points.map((p) => p.lowerLimit), COLOURS.limit, "dashed", 1.5, 1, "end"),
      line("Pass line", points.map((p) => p.passThreshold), COLOURS.pass, "solid", 2, 2, "end"),
      line("EWMA", points.map((p) => p.ewma), COLOURS.ewma, "solid", 2.5, 3),
      {
        name, type: "scatter", data: points.map((p, i) => ({ value: [i, p.score] as [number, number] })),
        symbol: "circle", symbolSize: 8, itemStyle: { color: COLOURS.score }, z: 4,
      },
      {
        name: "Drift flag", type: "scatter",
        data: flags.map((f) => ({ value: [f.index, f.score] as [number, number], rule: f.rule })),
        symbol: "triangle", symbolSize: 16,
        itemStyle: { color: COLOURS.flag, borderColor: "#ffffff", borderWidth: 1 }, z: 5,
      },
    ],
  };
  return { empty: points.length === 0, metric, option, flags, label };
}

/** One row of the table alternative. */
export interface ControlChartRow {
  key: string;
  observedOn: string;
  seq: number;
  score: string;
  ewma: string;
  lowerLimit: string;
  centre: string;
  upperLimit: string;
  passThreshold: string;
  belowPass: boolean;
  drift: string;
}

export function controlChartRows(points: SeriesPoint[]): ControlChartRow[] {
  return points.map((p) => ({
    key: p.observationId,
    observedOn: p.observedOn,
    seq: p.seq,
    score: fmt(p.score),
    ewma: fmt(p.ewma),
    lowerLimit: fmt(p.lowerLimit),
    centre: fmt(p.centre),
    upperLimit: fmt(p.upperLimit),
    passThreshold: fmt(p.passThreshold),
    belowPass: p.score < p.passThreshold,
    drift: p.flagged ? ruleLabel(p.flagged) : "—",
  }));
}
