// An ECharts chart with a text alternative: a label for screen readers and the same data as a table.
import { useEffect, useRef, type ReactNode } from "react";
import * as echarts from "echarts/core";
import { BarChart, LineChart, RadarChart, ScatterChart } from "echarts/charts";
import {
  AriaComponent,
  GridComponent,
  LegendComponent,
  MarkAreaComponent,
  MarkLineComponent,
  MarkPointComponent,
  RadarComponent,
  TooltipComponent,
} from "echarts/components";
import { SVGRenderer } from "echarts/renderers";
import type { EChartsCoreOption } from "echarts/core";

// Only the parts used, so the bundle stays small.
echarts.use([
  BarChart, LineChart, RadarChart, ScatterChart, AriaComponent, GridComponent, LegendComponent,
  MarkAreaComponent, MarkLineComponent, MarkPointComponent, RadarComponent, TooltipComponent, SVGRenderer,
]);

export interface ChartProps {
  option: EChartsCoreOption;
  /** What the chart shows, in one sentence: read by screen readers instead of the picture. */
  label: string;
  /** The same data as a table, shown under "Show as table". */
  table: ReactNode;
  height?: number;
  testId?: string;
}

export function Chart({ option, label, table, height = 280, testId }: ChartProps) {
  const ref = useRef<HTMLDivElement>(null);
  const chart = useRef<echarts.ECharts | null>(null);

  useEffect(() => {
    if (!ref.current) return;
    const c = echarts.init(ref.current, undefined, { renderer: "svg" });
    chart.current = c;
    const resize = () => c.resize();
    const observer = new ResizeObserver(resize);
    observer.observe(ref.current);
    return () => {
      observer.disconnect();
      c.dispose();
      chart.current = null;
    };
  }, []);

  useEffect(() => {
    // ECharts writes its own aria-label when aria is on: give it ours, or the label never reaches a reader.
    chart.current?.setOption({ aria: { enabled: true, label: { description: label } }, animation: false, ...option },
      { notMerge: true });
  }, [option, label]);

  return (
    <figure className="chart" data-testid={testId}>
      <div ref={ref} role="img" aria-label={label} style={{ width: "100%", height }} />
      <details className="chart-table">
        <summary>Show as table</summary>
        {table}
      </details>
    </figure>
  );
}
