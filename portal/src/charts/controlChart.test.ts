import { describe, expect, it } from "vitest";
import {
  axisFloor,
  controlChart,
  controlChartLabel,
  controlChartRows,
  flaggedPoints,
  ruleLabel,
  tooltipText,
  type LineSeries,
  type ScatterSeries,
  type SeriesPoint,
} from "./controlChart";
import { addDays, certificationStatus, driftStatus, eventLabel, taskStatus } from "./practitionerStatus";

function point(seq: number, score: number, over: Partial<SeriesPoint> = {}): SeriesPoint {
  return {
    observationId: `obs-${seq}`, observedOn: `2026-0${seq}-15`, seq, score, ewma: score - 1, centre: 80,
    lowerLimit: 70, upperLimit: 90, passThreshold: 80, flagged: null, ...over,
  };
}

function byName(chart: ReturnType<typeof controlChart>, name: string) {
  const s = chart.option.series.find((x) => x.name === name);
  if (!s) throw new Error(`no series ${name}: ${chart.option.series.map((x) => x.name).join(", ")}`);
  return s;
}

const drifting: SeriesPoint[] = [
  point(1, 88, { ewma: 86 }),
  point(2, 72, { ewma: 81 }),
  point(3, 64, { ewma: 69, flagged: "ewma_below_limit" }),
  point(4, 61, { ewma: 65, flagged: "ewma_below_limit" }),
  point(5, 85, { ewma: 79 }),
];

describe("controlChart", () => {
  it("draws each observation's score as a point on its date, in order", () => {
    const chart = controlChart(drifting);
    expect(chart.empty).toBe(false);
    expect(chart.option.xAxis.data).toEqual(["2026-01-15", "2026-02-15", "2026-03-15", "2026-04-15", "2026-05-15"]);
    const scores = byName(chart, "Total score") as ScatterSeries;
    expect(scores.type).toBe("scatter");
    expect(scores.data.map((d) => d.value)).toEqual([[0, 88], [1, 72], [2, 64], [3, 61], [4, 85]]);
  });

  it("draws the EWMA as a line, and the limits, centre and pass line from the series", () => {
    const chart = controlChart(drifting);
    const ewma = byName(chart, "EWMA") as LineSeries;
    expect(ewma.type).toBe("line");
    expect(ewma.data).toEqual([86, 81, 69, 65, 79]);
    expect((byName(chart, "Lower limit") as LineSeries).data).toEqual([70, 70, 70, 70, 70]);
    expect((byName(chart, "Upper limit") as LineSeries).data).toEqual([90, 90, 90, 90, 90]);
    expect((byName(chart, "Centre") as LineSeries).data).toEqual([80, 80, 80, 80, 80]);
    expect((byName(chart, "Pass line") as LineSeries).data).toEqual([80, 80, 80, 80, 80]);
    // Limits are told apart from the EWMA by dash, not colour alone.
    expect((byName(chart, "Lower limit") as LineSeries).lineStyle.type).toBe("dashed");
    expect(ewma.lineStyle.type).toBe("solid");
    // The axis starts in tens below the lowest value drawn (61 here), up to 100.
    expect(chart.option.yAxis).toMatchObject({ min: 50, max: 100 });
  });

  it("marks flagged points with their rule, at the flagged observation's score", () => {
    const chart = controlChart(drifting);
    const flags = byName(chart, "Drift flag") as ScatterSeries;
    expect(flags.symbol).toBe("triangle");
    expect(flags.data).toEqual([
      { value: [2, 64], rule: "ewma_below_limit" },
      { value: [3, 61], rule: "ewma_below_limit" },
    ]);
    expect(chart.flags.map((f) => [f.observationId, f.ruleLabel])).toEqual([
      ["obs-3", "EWMA below the lower control limit"],
      ["obs-4", "EWMA below the lower control limit"],
    ]);
    expect(chart.label).toContain("2 points flagged for drift (EWMA below the lower control limit)");
    // ECharts would otherwise replace the chart's aria-label with its own generated text.
    expect(chart.option.aria.label.description).toBe(chart.label);
  });

  it("names the rule in the tooltip of a flagged point, and not on a steady one", () => {
    const chart = controlChart(drifting);
    const flagged = chart.option.tooltip.formatter([{ dataIndex: 2 }]);
    expect(flagged).toContain("Drift flagged: EWMA below the lower control limit");
    expect(flagged).toContain("Total score: 64");
    expect(chart.option.tooltip.formatter([{ dataIndex: 0 }])).not.toContain("Drift");
    expect(chart.option.tooltip.formatter([])).toBe("");
  });

  it("keeps an empty series empty, and says so", () => {
    const chart = controlChart([]);
    expect(chart.empty).toBe(true);
    expect(chart.flags).toEqual([]);
    expect(chart.option.xAxis.data).toEqual([]);
    expect(chart.option.yAxis).toMatchObject({ min: 0, max: 100 });
    for (const s of chart.option.series) expect(s.data).toEqual([]);
    expect(chart.label).toBe("Fidelity control chart, total score: no observations yet.");
    expect(controlChartRows([])).toEqual([]);
  });

  it("names a competency metric on the axis, the score series, the label and the tooltip", () => {
    const points = [point(1, 75), point(2, 50, { flagged: "run_of_declines" })];
    const chart = controlChart(points, "Team process");
    expect(chart.metric).toBe("Team process");
    expect(chart.option.yAxis.name).toBe("Team process (%)");
    expect((byName(chart, "Team process") as ScatterSeries).data.map((d) => d.value[1])).toEqual([75, 50]);
    expect(chart.label).toMatch(/^Fidelity control chart, competency Team process: 2 observations/);
    expect(chart.label).toContain("Run of declining scores");
    expect(tooltipText(points[1]!, "Team process")).toContain("Team process: 50");
  });

  it("draws limits that change over the series where they were at each point", () => {
    // Early on the limits are wide (few observations); they narrow as the series grows, and a new
    // instrument version can move the pass line.
    const points = [
      point(1, 80, { lowerLimit: 60.25, upperLimit: 99.75, centre: 80 }),
      point(2, 82, { lowerLimit: 65.5, upperLimit: 94.5, centre: 80 }),
      point(3, 84, { lowerLimit: 68, upperLimit: 92, centre: 80, passThreshold: 85 }),
    ];
    const chart = controlChart(points);
    expect((byName(chart, "Lower limit") as LineSeries).data).toEqual([60.25, 65.5, 68]);
    expect((byName(chart, "Upper limit") as LineSeries).data).toEqual([99.75, 94.5, 92]);
    expect((byName(chart, "Pass line") as LineSeries).data).toEqual([80, 80, 85]);
    expect((byName(chart, "Lower limit") as LineSeries).step).toBe("end");
    expect(chart.option.yAxis.min).toBe(50); // the earliest, widest lower limit (60.25) is on the chart
    // The sentence and the table speak of the latest limits.
    expect(chart.label).toContain("control limits 68 to 92, pass line 85");
    const rows = controlChartRows(points);
    expect(rows.map((r) => [r.lowerLimit, r.upperLimit, r.passThreshold])).toEqual([
      ["60.3", "99.8", "80"], ["65.5", "94.5", "80"], ["68", "92", "85"],
    ]);
    expect(rows[2]!.belowPass).toBe(true);
  });

  it("gives the table a row per observation with the rule in words", () => {
    const rows = controlChartRows(drifting);
    expect(rows).toHaveLength(5);
    expect(rows.map((r) => r.drift)).toEqual(["—", "—", "EWMA below the lower control limit",
      "EWMA below the lower control limit", "—"]);
    expect(rows[0]).toMatchObject({ key: "obs-1", observedOn: "2026-01-15", seq: 1, score: "88", belowPass: false });
  });

  it("escapes HTML in the tooltip (ECharts renders it as HTML)", () => {
    expect(tooltipText(point(1, 70), "<b>x</b>")).toContain("&lt;b&gt;x&lt;/b&gt;: 70");
  });
});

describe("rules and labels", () => {
  it("words the known drift rules, and makes unknown ones readable", () => {
    expect(ruleLabel("run_of_declines")).toBe("Run of declining scores");
    expect(ruleLabel("some_new_rule")).toBe("Some new rule");
    expect(axisFloor([point(1, 3, { ewma: 2, lowerLimit: 0 })])).toBe(0);
    expect(flaggedPoints([point(1, 70)])).toEqual([]);
    expect(controlChartLabel([point(1, 70)], "total")).toContain("no drift flags");
  });

  it("tells drift apart: none yet, steady, drifting with the flagged metrics", () => {
    expect(driftStatus([], "miiwrap-practice")).toMatchObject({ label: "No drift data yet", tone: "warn" });
    const steady = [{ family: "miiwrap-practice", drifting: false,
                      metrics: [{ metric: "total", flagged: null, ewma: 82, observations: 6 }] }];
    expect(driftStatus(steady, "miiwrap-practice")).toEqual({ label: "No drift", tone: "good", details: [] });
    const bad = [{ family: "miiwrap-practice", drifting: true, metrics: [
      { metric: "total", flagged: "ewma_below_limit", ewma: 61, observations: 6 },
      { metric: "Team process", flagged: "run_of_declines", ewma: 55, observations: 6 },
      { metric: "Engagement", flagged: null, ewma: 80, observations: 6 },
    ] }];
    expect(driftStatus(bad, "miiwrap-practice")).toEqual({
      label: "Drifting", tone: "bad",
      details: ["Total score: EWMA below the lower control limit", "Team process: Run of declining scores"],
    });
    expect(driftStatus(bad, "another-family").label).toBe("No drift data yet");
  });

  it("words certification and task states", () => {
    expect(certificationStatus("recertification_due")).toEqual({ label: "Recertification due", tone: "warn" });
    expect(certificationStatus("not_certified").label).toBe("Not certified");
    expect(taskStatus("open", "2026-01-01", "2026-02-01")).toEqual({ label: "Overdue", tone: "bad" });
    expect(taskStatus("open", "2026-03-01", "2026-02-01")).toEqual({ label: "Open", tone: "warn" });
    expect(taskStatus("done", "2026-01-01", "2026-02-01").label).toBe("Done");
    expect(addDays("2026-12-28", 7)).toBe("2027-01-04");
    expect(eventLabel("fidelity.ObservationRecorded.v1")).toBe("Observation recorded");
    expect(eventLabel("coaching.CoachingTaskOpened.v2")).toBe("Coaching task opened");
  });
});
