import { describe, expect, it } from "vitest";
import { groupByWeek, localDay, sessionTimes, timeRange, until, weekStart } from "./time";

const s = (id: string, startsAt: string, endsAt: string, timezone = "America/Chicago") => ({ id, startsAt, endsAt, timezone });

describe("weeks in the viewer's zone", () => {
  it("puts a session in the week of its local day, Monday first", () => {
    // Monday 00:30 in Berlin is still Sunday evening in Chicago.
    const iso = "2027-01-03T23:30:00Z";
    expect(localDay(iso, "Europe/Berlin")).toBe("2027-01-04");
    expect(weekStart(iso, "Europe/Berlin")).toBe("2027-01-04");
    expect(weekStart(iso, "America/Chicago")).toBe("2026-12-28");
  });

  it("groups and orders sessions by week, whatever order they come in", () => {
    const weeks = groupByWeek([
      s("c", "2027-01-19T16:00:00Z", "2027-01-19T17:30:00Z"),
      s("a", "2027-01-05T16:00:00Z", "2027-01-05T17:30:00Z"),
      s("b", "2027-01-07T16:00:00Z", "2027-01-07T17:30:00Z"),
    ], "America/Chicago");
    expect(weeks.map((w) => w.key)).toEqual(["2027-01-04", "2027-01-18"]);
    expect(weeks[0].sessions.map((x) => x.id)).toEqual(["a", "b"]);
    expect(weeks[0].label).toBe("Week of Mon, Jan 4, 2027");
  });

  it("gives no weeks for no sessions", () => {
    expect(groupByWeek([], "UTC")).toEqual([]);
  });
});

describe("session times", () => {
  const session = s("a", "2027-01-05T16:00:00Z", "2027-01-05T17:30:00Z");

  it("shows the session's own zone, and the viewer's when it differs", () => {
    const t = sessionTimes(session, "Europe/Berlin");
    expect(t.own).toBe("Tue, Jan 5, 10:00 AM – 11:30 AM CST");
    expect(t.viewer).toBe("Tue, Jan 5, 5:00 PM – 6:30 PM GMT+1");
  });

  it("shows one time when the viewer is in the session's zone", () => {
    expect(sessionTimes(session, "America/Chicago").viewer).toBeNull();
  });

  it("follows daylight saving time in the session's zone", () => {
    expect(timeRange("2027-03-16T15:00:00Z", "2027-03-16T16:30:00Z", "America/Chicago"))
      .toBe("Tue, Mar 16, 10:00 AM – 11:30 AM CDT");
  });

  it("names the end's day when the session crosses midnight", () => {
    expect(timeRange("2027-01-05T22:00:00Z", "2027-01-06T01:00:00Z", "UTC"))
      .toBe("Tue, Jan 5, 10:00 PM – Wed, Jan 6, 1:00 AM UTC");
  });
});

describe("until", () => {
  const now = new Date("2027-01-05T10:00:00Z");
  it("says how long is left", () => {
    expect(until("2027-01-05T10:30:00Z", now)).toBe("in 30 minutes");
    expect(until("2027-01-06T09:00:00Z", now)).toBe("in 23 hours");
    expect(until("2027-01-09T10:00:00Z", now)).toBe("in 4 days");
    expect(until("2027-01-05T09:00:00Z", now)).toBe("now");
  });
});
