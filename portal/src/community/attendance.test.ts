import { describe, expect, it } from "vitest";
import { attendanceChart, attendanceSummary, formatCode, percent, shareLabel, sourceLabel } from "./attendance";

describe("attendance labels", () => {
  it("compares the share with the program's line", () => {
    expect(shareLabel({ attended: true, share: 0.8, minutesPresent: 72 }, 0.75)).toBe("80% of the session (72 min): attended");
    expect(shareLabel({ attended: false, share: 0.5, minutesPresent: 45 }, 0.75)).toBe(
      "50% of the session (45 min): below the 75% line");
  });

  it("says when the hub set it against the share", () => {
    expect(shareLabel({ attended: true, share: 0.2, minutesPresent: 18 }, 0.75)).toMatch(/set by the hub/);
    expect(shareLabel({ attended: false, share: 0.9, minutesPresent: 81 }, 0.75)).toMatch(/not counted/);
  });

  it("rounds and clamps percentages", () => {
    expect(percent(0.666)).toBe("67%");
    expect(percent(1.2)).toBe("100%");
  });

  it("summarises and names sources", () => {
    const rows = [{ attended: true, share: 1, minutesPresent: 90 }, { attended: false, share: 0.1, minutesPresent: 9 }];
    expect(attendanceSummary(rows, 4)).toBe("1 of 4 attended");
    expect(sourceLabel("import")).toBe("Imported report");
  });
});

describe("verification codes", () => {
  it("groups twelve characters in fours, however typed", () => {
    expect(formatCode("abcd efgh 2345")).toBe("ABCD-EFGH-2345");
    expect(formatCode("ABCD-EFGH-2345")).toBe("ABCD-EFGH-2345");
    expect(formatCode("short")).toBe("SHORT");
  });
});

describe("the attendance chart", () => {
  it("draws each person's share by name, coloured by whether it counts, with the line", () => {
    const option = attendanceChart([
      { personId: "b", displayName: "Ben", attended: false, share: 0.4, minutesPresent: 36 },
      { personId: "a", displayName: "Ana", attended: true, share: 0.95, minutesPresent: 86 },
    ], 0.75);
    expect(option.yAxis.data).toEqual(["Ana", "Ben"]);
    expect(option.series[0].data.map((d) => d.value)).toEqual([95, 40]);
    expect(option.series[0].data[1].itemStyle.color).toBe("#b00020");
    expect(option.series[0].markLine.data).toEqual([{ xAxis: 75 }]);
  });
});
