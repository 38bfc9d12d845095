// Attendance in words: the share of the session a person was present for, against the program's line.

export interface AttendanceLike {
  attended: boolean;
  share: number; // 0..1
  minutesPresent: number;
}

export function percent(share: number): string {
  return `${Math.round(Math.max(0, Math.min(1, share)) * 100)}%`;
}

export function shareLabel(a: AttendanceLike, threshold: number): string {
  const shown = `${percent(a.share)} of the session (${a.minutesPresent} min)`;
  if (a.attended) return a.share >= threshold ? `${shown}: attended` : `${shown}: attended (set by the hub)`;
  return a.share >= threshold ? `${shown}: not counted (set by the hub)` : `${shown}: below the ${percent(threshold)} line`;
}

export const SOURCE_LABELS: Record<string, string> = {
  check_in: "Checked in",
  import: "Imported report",
  adjustment: "Adjusted",
};

export function sourceLabel(source: string): string {
  return SOURCE_LABELS[source] ?? source;
}

/** How many of the registrants attended, e.g. "3 of 4 attended". */
export function attendanceSummary(rows: readonly AttendanceLike[], registered: number): string {
  const attended = rows.filter((r) => r.attended).length;
  const of = Math.max(registered, rows.length);
  return `${attended} of ${of} attended`;
}

/** Verification codes are 12 characters shown as XXXX-XXXX-XXXX; accept them typed either way. */
export function formatCode(code: string): string {
  const bare = code.replace(/[^0-9A-Za-z]/g, "").toUpperCase();
  return bare.length === 12 ? `${bare.slice(0, 4)}-${bare.slice(4, 8)}-${bare.slice(8)}` : bare;
}

export interface ShareRow extends AttendanceLike {
  personId: string;
  displayName: string;
}

/** A horizontal bar per person: the share present, coloured by whether it counts, with the program's line. */
export function attendanceChart(rows: readonly ShareRow[], threshold: number) {
  const sorted = [...rows].sort((a, b) => a.displayName.localeCompare(b.displayName));
  return {
    grid: { left: 8, right: 24, top: 24, bottom: 24, containLabel: true },
    tooltip: { trigger: "axis" },
    xAxis: { type: "value", min: 0, max: 100, axisLabel: { formatter: "{value}%" } },
    yAxis: { type: "category", inverse: true, data: sorted.map((r) => r.displayName) },
    series: [{
      type: "bar",
      name: "Share of the session present",
      data: sorted.map((r) => ({
        value: Math.round(r.share * 100),
        itemStyle: { color: r.attended ? "#1a6b3c" : "#b00020" },
      })),
      markLine: {
        symbol: "none",
        label: { formatter: `${percent(threshold)} line` },
        lineStyle: { color: "#1d2433", type: "dashed" },
        data: [{ xAxis: Math.round(threshold * 100) }],
      },
    }],
  };
}
