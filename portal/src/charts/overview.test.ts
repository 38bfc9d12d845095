import { describe, expect, it } from "vitest";
import {
  INSUFFICIENT,
  actionRows,
  domainLabel,
  domainLabels,
  readinessBars,
  readinessOption,
  reasonWords,
  shareOption,
  shareSeries,
  stageLabel,
  stageRows,
  stageSteps,
} from "./overview";

const policy = { readyAt: 3.5, conditionsAt: 2.5, minRespondents: 5 };

describe("readiness domains", () => {
  const results = [
    { key: "leadership", status: "ok", respondents: 8, mean: 4.1, spread: 0.5, agreement: 0.8 },
    { key: "climate", status: "gap", respondents: 7, mean: 3.1, spread: 0.9, agreement: 0.6 },
    // A server that leaked figures for a hidden domain must still not get them shown.
    { key: "resources", status: "insufficient", respondents: 2, mean: 2.0, spread: 0.1, agreement: 0.9 },
  ];
  const bars = readinessBars(results, { leadership: "Leadership", climate: "Climate", resources: "Resources" });

  it("gives insufficient domains no value and labels them", () => {
    const hidden = bars.find((b) => b.key === "resources")!;
    expect(hidden.mean).toBeNull();
    expect(hidden.spread).toBeNull();
    expect(hidden.agreement).toBeNull();
    expect(hidden.statusLabel).toBe(INSUFFICIENT);
    expect(hidden.statusLabel).toBe("Insufficient respondents");
    expect(hidden.axisLabel).toContain("Insufficient respondents");
  });

  it("keeps the figures of domains above the floor and marks gaps", () => {
    expect(bars.map((b) => b.mean)).toEqual([4.1, 3.1, null]);
    const gap = bars.find((b) => b.key === "climate")!;
    expect(gap.status).toBe("gap");
    expect(gap.statusLabel).toBe("Gap");
    expect(gap.axisLabel).toContain("Gap");
    expect(bars.find((b) => b.key === "leadership")!.axisLabel).toBe("Leadership");
  });

  it("puts no number for an insufficient domain into the chart", () => {
    const option = readinessOption(bars, policy, { min: 1, max: 5 }) as {
      series: { data: { value: number | null; itemStyle: { color: string } }[]; markLine: { data: { xAxis: number }[] } }[];
      yAxis: { data: string[] };
    };
    const data = option.series[0].data;
    expect(data.map((d) => d.value)).toEqual([4.1, 3.1, null]);
    expect(data[1].itemStyle.color).not.toBe(data[0].itemStyle.color); // the gap stands out
    expect(option.yAxis.data[2]).toContain(INSUFFICIENT);
    expect(option.series[0].markLine.data.map((m) => m.xAxis)).toEqual([3.5, 2.5]);
    expect(JSON.stringify(option)).not.toContain("2.0");
  });

  it("falls back to a readable label without the instrument's names", () => {
    expect(readinessBars([{ key: "staff_buy_in", status: "ok", respondents: 6, mean: 4 }])[0].label)
      .toBe("Staff buy in");
  });
});

describe("domain names in reasons and the plan", () => {
  const rounds = [
    { instrument: { domains: [{ key: "data_systems", label: "Data systems (old wording)" }] } },
    { instrument: null },
    { instrument: { domains: [
      { key: "data_systems", label: "Data and information systems" },
      { key: "data_systems_use", label: "Use of data" },
      { key: "leadership_commitment", label: "Leadership commitment" },
    ] } },
  ];
  const labels = domainLabels(rounds);

  it("takes each key's label from the instruments, the later round's wording winning", () => {
    expect(labels).toEqual({ data_systems: "Data and information systems", data_systems_use: "Use of data",
      leadership_commitment: "Leadership commitment" });
    expect(domainLabels([])).toEqual({});
  });

  it("names the domains of the service's reasons with their labels, never the raw keys", () => {
    expect(reasonWords("gaps (below 4): data_systems, leadership_commitment", labels))
      .toBe("Gaps (below 4): Data and information systems, Leadership commitment");
    expect(reasonWords("below 2.5: data_systems_use", labels)).toBe("Below 2.5: Use of data"); // not "…systems_use"
    expect(reasonWords("too few respondents to judge: data_systems", labels)).not.toMatch(/[a-z]_[a-z]/);
  });

  it("leaves words that only contain a key, and reasons naming no domain, alone", () => {
    expect(reasonWords("fewer than 5 respondents in most domains", labels))
      .toBe("Fewer than 5 respondents in most domains");
    expect(reasonWords("see my_data_systems_x", labels)).toBe("See my_data_systems_x");
    expect(reasonWords("gaps: staff_buy_in", {})).toBe("Gaps: staff_buy_in");
  });

  it("names a plan action's domain, readable even when no instrument names it", () => {
    expect(domainLabel("leadership_commitment", labels)).toBe("Leadership commitment");
    expect(domainLabel("staff_buy_in", labels)).toBe("Staff buy in");
  });
});

describe("certified share over time", () => {
  const points = [
    { month: "2026-11", on: "2026-11-30", active: 6, certified: 3, certifiedPercent: 50 },
    { month: "2026-09", on: "2026-09-30", active: 0, certified: 0, certifiedPercent: null },
    { month: "2026-10", on: "2026-10-31", active: 6, certified: 2, certifiedPercent: 33.3 },
  ];

  it("orders months and keeps unknown months as gaps, not zeros", () => {
    const s = shareSeries(points);
    expect(s.months).toEqual(["2026-09", "2026-10", "2026-11"]);
    expect(s.percents).toEqual([null, 33.3, 50]);
    expect(s.rows.map((r) => r.percent)).toEqual(["—", "33.3%", "50.0%"]);
  });

  it("draws the 50% Full Implementation line and says whether the latest point reaches it", () => {
    const s = shareSeries(points, 50);
    expect(s.line).toBe(50);
    expect(s.reached).toBe(true);
    expect(s.rows.map((r) => r.meetsLine)).toEqual([false, false, true]);
    const option = shareOption(s) as { series: { markLine: { data: { yAxis: number }[] } }[] };
    expect(option.series[0].markLine.data).toEqual([{ yAxis: 50, name: "Full Implementation" }]);
    expect(shareSeries(points.slice(1), 50).reached).toBe(false);
  });

  it("has nothing reached without points", () => {
    const s = shareSeries([]);
    expect(s.percents).toEqual([]);
    expect(s.reached).toBe(false);
  });
});

describe("plan actions", () => {
  const actions = [
    { id: "a", title: "Done late", status: "done", dueOn: "2026-01-01", overdue: true },
    { id: "b", title: "Train supervisors", status: "open", dueOn: "2026-12-20", overdue: false },
    { id: "c", title: "Hire a coach", status: "in_progress", dueOn: "2026-10-01", overdue: true },
    { id: "d", title: "No date", status: "open", dueOn: null, overdue: false },
    { id: "e", title: "Dropped", status: "dropped", dueOn: "2026-01-01", overdue: false },
  ];
  const rows = actionRows(actions);

  it("marks overdue actions still to do, and never done ones", () => {
    expect(rows.find((r) => r.id === "c")!.marker).toBe("Overdue");
    expect(rows.find((r) => r.id === "a")!.marker).toBeNull();
    expect(rows.filter((r) => r.marker).map((r) => r.id)).toEqual(["c"]);
  });

  it("lists overdue first, then open by due date, then done and dropped", () => {
    expect(rows.map((r) => r.id)).toEqual(["c", "b", "d", "a", "e"]);
  });

  it("only open work can be marked done, with plain status words", () => {
    expect(rows.filter((r) => r.completable).map((r) => r.id)).toEqual(["c", "b", "d"]);
    expect(rows.find((r) => r.id === "c")!.statusLabel).toBe("In progress");
  });
});

describe("stages", () => {
  const history = [
    { stage: "exploration", previousStage: null, enteredOn: "2025-01-10", reason: "the agency was registered" },
    { stage: "installation", previousStage: "exploration", enteredOn: "2025-06-01",
      reason: "the implementation plan was approved", certifiedShare: null },
    { stage: "initial_implementation", previousStage: "installation", enteredOn: "2026-02-01",
      reason: "1 of 6 active practitioners certified", certifiedShare: 0.167 },
  ];

  it("names stages in plain words", () => {
    expect(stageLabel("initial_implementation")).toBe("Initial Implementation");
    expect(stageLabel("full_implementation")).toBe("Full Implementation");
    expect(stageLabel("sustainment")).toBe("Sustainment");
  });

  it("marks passed, current and later stages with their dates", () => {
    const steps = stageSteps("initial_implementation", history);
    expect(steps.map((s) => s.state)).toEqual(["done", "done", "current", "ahead", "ahead"]);
    expect(steps[2].enteredOn).toBe("2026-02-01");
    expect(steps[3].enteredOn).toBeNull();
  });

  it("lists the history newest first with reasons and the certified share", () => {
    const rows = stageRows(history);
    expect(rows[0]).toEqual({ label: "Initial Implementation", from: "Installation", enteredOn: "2026-02-01",
      reason: "1 of 6 active practitioners certified", share: "17%" });
    expect(rows[2].from).toBe("—");
    expect(rows[2].reason).toBe("The agency was registered");
  });
});
