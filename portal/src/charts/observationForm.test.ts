import { describe, expect, it } from "vitest";
import {
  afterSuccess,
  fieldForPath,
  fingerprint,
  groupByCompetency,
  humanize,
  kindsFor,
  localDate,
  keyFor,
  placeErrors,
  round2,
  runningTotal,
  scaleChoices,
  scoreList,
  type FormInstrument,
  type FormItem,
} from "./observationForm";

const item = (key: string, competency: string, over: Partial<FormItem> = {}): FormItem => ({
  key, label: key.replace("_", " "), competency, scaleMin: 0, scaleMax: 2, critical: false, criticalMin: 1,
  required: true, weight: 1, ...over,
});

// The seeded MiiWrap practice instrument (services/fidelity/domain.py MIIWRAP_PRACTICE_V1).
const FV = "Family voice and choice", TEAM = "Team process", NEEDS = "Needs-driven planning", OUT = "Outcomes monitoring";
const MIIWRAP: FormInstrument = {
  passThreshold: 80,
  competencies: [FV, TEAM, NEEDS, OUT],
  items: [
    item("family_perspective", FV, { critical: true }), item("family_priorities", FV), item("strengths_used", FV),
    item("roles_purpose_clear", TEAM), item("natural_supports", TEAM),
    item("needs_not_services", NEEDS, { critical: true }), item("options_brainstormed", NEEDS),
    item("plan_links_vision", NEEDS),
    item("progress_reviewed", OUT), item("safety_plan_reviewed", OUT, { critical: true }), item("actions_owned", OUT),
  ],
};
// Its reference coding (SEEDED_REFERENCES[0]); the service scores it 81.82, passed.
const REFERENCE = {
  family_perspective: 2, family_priorities: 2, strengths_used: 1, roles_purpose_clear: 2, natural_supports: 1,
  needs_not_services: 2, options_brainstormed: 1, plan_links_vision: 2, progress_reviewed: 2,
  safety_plan_reviewed: 2, actions_owned: 1,
};

// Weights, a scale not starting at 0 and an optional item.
const WEIGHTED: FormInstrument = {
  passThreshold: 70,
  competencies: ["C1", "C2"],
  items: [
    item("a", "C1", { scaleMax: 4, weight: 2.5 }),
    item("b", "C1", { scaleMin: 1, scaleMax: 5, critical: true, criticalMin: 3 }),
    item("c", "C2", { required: false, weight: 0.5 }),
  ],
};

describe("scaleChoices", () => {
  it("gives one choice per point of the scale, lowest first, with the ends named", () => {
    expect(scaleChoices({ scaleMin: 0, scaleMax: 2 })).toEqual([
      { value: 0, label: "0 (lowest)" }, { value: 1, label: "1" }, { value: 2, label: "2 (highest)" },
    ]);
    expect(scaleChoices({ scaleMin: 1, scaleMax: 5 }).map((c) => c.value)).toEqual([1, 2, 3, 4, 5]);
  });
});

describe("groupByCompetency", () => {
  it("keeps the instrument's competency order and every item once", () => {
    const groups = groupByCompetency(MIIWRAP);
    expect(groups.map((g) => g.competency)).toEqual([FV, TEAM, NEEDS, OUT]);
    expect(groups.map((g) => g.items.length)).toEqual([3, 2, 3, 3]);
  });
});

describe("runningTotal matches the fidelity service's scoring", () => {
  it("scores the reference coding as the service does (81.82, passing)", () => {
    const t = runningTotal(MIIWRAP, REFERENCE);
    expect(t.total).toBe(81.82);
    expect(t.competencies).toEqual({ [FV]: 83.33, [TEAM]: 75, [NEEDS]: 83.33, [OUT]: 83.33 });
    expect(t.passing).toBe(true);
    expect(t.missingRequired).toEqual([]);
    expect(t.scored).toBe(11);
  });

  it("counts only the items scored so far, and a critical item below its minimum fails", () => {
    const t = runningTotal(MIIWRAP, { family_perspective: 0, family_priorities: 2, strengths_used: 2 });
    expect(t.total).toBe(66.67);
    expect(t.competencies).toEqual({ [FV]: 66.67 });
    expect(t.criticalBelowMin).toEqual(["family_perspective"]);
    expect(t.passing).toBe(false);
    expect(t.missingRequired).toHaveLength(8);
  });

  it("weights items and measures from the bottom of each scale", () => {
    // services/fidelity/domain.py score() gives 73.33 {C1: 75, C2: 50} passed; 78.57 failed on b; 46.43
    const a = runningTotal(WEIGHTED, { a: 3, b: 4, c: 1 });
    expect([a.total, a.competencies, a.passing]).toEqual([73.33, { C1: 75, C2: 50 }, true]);
    const b = runningTotal(WEIGHTED, { a: 4, b: 2 });
    expect([b.total, b.passing, b.criticalBelowMin]).toEqual([78.57, false, ["b"]]);
    expect(b.missingRequired).toEqual([]); // c is optional
    expect(runningTotal(WEIGHTED, { a: 1, b: 5 }).total).toBe(46.43);
  });

  it("a total exactly at the threshold passes", () => {
    const t = runningTotal({ ...WEIGHTED, passThreshold: 75 }, { a: 3, b: 4 });
    expect(t.total).toBe(75);
    expect(t.passing).toBe(true);
  });

  it("has no total before anything is scored", () => {
    const t = runningTotal(MIIWRAP, {});
    expect(t.total).toBeNull();
    expect(t.passing).toBe(false);
    expect(t.missingRequired).toHaveLength(11);
  });

  it("rounds like Python's round(x, 2)", () => {
    expect([round2(12.125), round2(0.125), round2(1.005), round2(2.675), round2(66.666666)]).toEqual(
      [12.12, 0.12, 1, 2.67, 66.67]);
    expect(round2(12.375)).toBe(12.38);
  });
});

describe("scoreList", () => {
  it("lists the scored items in the instrument's order", () => {
    expect(scoreList(WEIGHTED, { c: 1, a: 2 })).toEqual([{ item: "a", score: 2 }, { item: "c", score: 1 }]);
  });
});

describe("server error paths → fields", () => {
  const sent = [{ item: "a" }, { item: "b" }, { item: "c" }];

  it("maps input paths of recordObservation to the form's fields", () => {
    expect(fieldForPath("input.scores[2].score", sent)).toBe("item:c");
    expect(fieldForPath("input.scores[0].score", sent)).toBe("item:a");
    expect(fieldForPath("input.observedOn", sent)).toBe("observedOn");
    expect(fieldForPath("input.practitionerId", sent)).toBe("practitionerId");
    expect(fieldForPath("input.scores", sent)).toBe("scores");
    expect(fieldForPath("input.scores[9].score", sent)).toBeNull(); // not sent: nothing to point at
    expect(fieldForPath(null, sent)).toBeNull();
    expect(fieldForPath("other.observedOn", sent)).toBeNull();
  });

  it("maps calibrate's top-level scores argument", () => {
    expect(fieldForPath("scores[1].score", sent, "")).toBe("item:b");
  });

  it("leaves errors the form cannot place for the summary", () => {
    const placed = placeErrors(
      [{ path: "input.observedOn", message: "future" }, { path: null, message: "not calibrated" },
       { path: "input.instrumentId", message: "retired" }],
      sent, new Set(["observedOn", "item:a"]));
    expect(placed).toEqual([
      { field: "observedOn", message: "future" }, { field: null, message: "not calibrated" },
      { field: null, message: "retired" },
    ]);
  });
});

describe("Idempotency-Key", () => {
  let n = 0;
  const make = () => `key-${++n}`;

  it("is kept across retries of the same content and renewed when the content changes", () => {
    const first = keyFor(null, fingerprint({ notes: "x", scores: [1] }), make);
    const retry = keyFor(first, fingerprint({ scores: [1], notes: "x" }), make); // same content, other key order
    expect(retry.key).toBe(first.key);
    const changed = keyFor(retry, fingerprint({ notes: "y", scores: [1] }), make);
    expect(changed.key).not.toBe(first.key);
  });

  it("is renewed after a success even for identical content", () => {
    const content = fingerprint({ notes: "same" });
    const used = keyFor(null, content, make);
    const next = keyFor(afterSuccess(), content, make);
    expect(next.key).not.toBe(used.key);
  });
});

describe("settings and kinds", () => {
  it("offers the kinds the service accepts for the instrument's kind", () => {
    expect(kindsFor("practice_observation")).toEqual(["live_observation", "recording_review"]);
    expect(kindsFor("record_review")).toEqual(["record_review"]);
  });

  it("labels codes and dates for people", () => {
    expect(humanize("team_meeting")).toBe("Team meeting");
    expect(localDate(new Date(2026, 0, 5))).toBe("2026-01-05");
  });
});
