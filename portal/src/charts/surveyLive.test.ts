import { describe, expect, it } from "vitest";
import { liveCount, recordCount, respondentsOf } from "./surveyLive";

const TYPE = "readiness.ReadinessResponseRecorded.v1";

describe("liveCount", () => {
  it("reads the round and count of a response event", () => {
    expect(liveCount(TYPE, { round_id: "r1", respondents: 3 })).toEqual({ roundId: "r1", respondents: 3 });
  });

  it("ignores other events and malformed data", () => {
    expect(liveCount("readiness.ReadinessRoundOpened.v1", { round_id: "r1", respondents: 3 })).toBeNull();
    expect(liveCount(TYPE, null)).toBeNull();
    expect(liveCount(TYPE, "r1")).toBeNull();
    expect(liveCount(TYPE, { round_id: "r1", respondents: "3" })).toBeNull();
    expect(liveCount(TYPE, { round_id: "r1", respondents: 2.5 })).toBeNull();
    expect(liveCount(TYPE, { respondents: 3 })).toBeNull();
  });
});

describe("recordCount and respondentsOf", () => {
  it("keeps the highest count per round, whatever order events and fetches arrive in", () => {
    let counts = recordCount({}, { roundId: "r1", respondents: 2 });
    counts = recordCount(counts, { roundId: "r1", respondents: 1 }); // late
    counts = recordCount(counts, { roundId: "r2", respondents: 1 });
    expect(counts).toEqual({ r1: 2, r2: 1 });
    const same = recordCount(counts, { roundId: "r1", respondents: 2 }); // repeated: no new state
    expect(same).toBe(counts);
    expect(respondentsOf({ id: "r1", respondents: 1 }, counts)).toBe(2);
    expect(respondentsOf({ id: "r1", respondents: 4 }, counts)).toBe(4); // a newer fetch wins
    expect(respondentsOf({ id: "r3", respondents: 0 }, counts)).toBe(0);
  });
});
