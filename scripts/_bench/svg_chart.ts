/**
 * Line charts as SVG text, small enough to read whole: axes with ticks and labels, one polyline with point
 * markers per series, a legend under the plot, and a white background so the chart reads on dark pages
 * too. {@linkcode chartRow} sets several charts side by side under one title.
 *
 * @module
 */

/** One line of a chart. */
export interface Series {
  name: string;
  /** `[x, y]` pairs, drawn in the order given. */
  points: [number, number][];
  /** A CSS colour; a palette colour by position when absent. */
  color?: string;
  /** Drawn dashed: for a reference line such as a baseline. */
  dashed?: boolean;
}

/** What {@linkcode lineChart} draws. */
export interface LineChart {
  title: string;
  /** A line of context under the title, in smaller grey type. */
  subtitle?: string;
  /** The x axis's label, with its unit: "database size (MiB)". */
  xLabel: string;
  /** The y axis's label, with its unit: "time (s)". */
  yLabel: string;
  series: Series[];
  /**
   * `"log2"` spaces powers of two evenly. Either way there is a tick at each x value of the data.
   *
   * @default {"linear"}
   */
  xScale?: "linear" | "log2";
  /** @default {480} */
  width?: number;
  /** @default {340} */
  height?: number;
}

const PALETTE = ["#1864ab", "#d9480f", "#2b8a3e", "#862e9c", "#5c5f66"];
const FONT = "DejaVu Sans, Helvetica, Arial, sans-serif";
const MARGIN = { left: 64, right: 24, top: 40, bottom: 62 };
const SUBTITLE_HEIGHT = 18;
const LEGEND_ROW = 22;
// Font sizes in px: large enough to read when a row of three charts is scaled to a README's width.
const SIZE = { rowTitle: 20, title: 16, subtitle: 13, tick: 13, label: 14, legend: 13 };

/** Escapes text for an SVG element or attribute. */
export function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** `chart` as a standalone `<svg>` document. */
export function lineChart(chart: LineChart): string {
  const { width, height } = chartSize(chart);
  return svgDocument(width, height, chartBody(chart, width, height));
}

/** Several charts side by side, under one `title`, as one `<svg>` document. */
export function chartRow(title: string, charts: LineChart[]): string {
  const titleHeight = 36;
  const sizes = charts.map(chartSize);
  const width = sizes.reduce((sum, s) => sum + s.width, 0);
  const height = titleHeight + Math.max(0, ...sizes.map((s) => s.height));
  let x = 0;
  const panels = charts.map((chart, i) => {
    const { width: w, height: h } = sizes[i]!;
    const panel = `<svg x="${x}" y="${titleHeight}" width="${w}" height="${h}">` +
      `${chartBody(chart, w, h)}</svg>`;
    x += w;
    return panel;
  });
  const heading = text(width / 2, 24, title, {
    size: fitSize(title, SIZE.rowTitle, width),
    weight: "bold",
    anchor: "middle",
  });
  return svgDocument(width, height, [heading, ...panels].join("\n"));
}

function chartSize(chart: LineChart): { width: number; height: number } {
  const width = chart.width ?? 480;
  const legendRows = legendLayout(chart.series, width).rows;
  const extra = (legendRows - 1) * LEGEND_ROW + (chart.subtitle ? SUBTITLE_HEIGHT : 0);
  return { width, height: (chart.height ?? 340) + extra };
}

function svgDocument(width: number, height: number, body: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n` +
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
    `viewBox="0 0 ${width} ${height}" font-family="${FONT}">\n` +
    `<rect width="100%" height="100%" fill="#ffffff"/>\n${body}\n</svg>\n`;
}

function chartBody(chart: LineChart, width: number, height: number): string {
  const legend = legendLayout(chart.series, width);
  const plot = {
    left: MARGIN.left,
    top: MARGIN.top + (chart.subtitle ? SUBTITLE_HEIGHT : 0),
    right: width - MARGIN.right,
    bottom: height - MARGIN.bottom - legend.rows * LEGEND_ROW,
  };
  const all = chart.series.flatMap((s) => s.points);
  const log = chart.xScale === "log2";
  const fx = (x: number) => (log ? Math.log2(x) : x);
  const xs = all.length > 0 ? all.map(([x]) => fx(x)) : [0];
  const xMin = Math.min(...xs);
  const xMax = Math.max(...xs);
  // Headroom, so a line at the largest value does not run along the frame.
  const yTicks = niceTicks(1.08 * Math.max(0, ...all.map(([, y]) => y)));
  const yMax = yTicks[yTicks.length - 1]!;
  const px = (x: number) =>
    xMax === xMin
      ? (plot.left + plot.right) / 2
      : plot.left + ((fx(x) - xMin) / (xMax - xMin)) * (plot.right - plot.left);
  const py = (y: number) => plot.bottom - (y / yMax) * (plot.bottom - plot.top);
  const xTicks = [...new Set(all.map(([x]) => x))].sort((a, b) => a - b);
  const out: string[] = [
    text(width / 2, 22, chart.title, {
      size: fitSize(chart.title, SIZE.title, width),
      weight: "bold",
      anchor: "middle",
    }),
  ];
  if (chart.subtitle) {
    const size = fitSize(chart.subtitle, SIZE.subtitle, width);
    out.push(text(width / 2, 40, chart.subtitle, { size, anchor: "middle", color: "#495057" }));
  }
  for (const t of yTicks) {
    out.push(line(plot.left, py(t), plot.right, py(t), "#dee2e6"));
    out.push(text(plot.left - 6, py(t) + 4, tickLabel(t), { size: SIZE.tick, anchor: "end" }));
  }
  for (const t of xTicks) {
    out.push(line(px(t), plot.bottom, px(t), plot.bottom + 5, "#212529"));
    out.push(text(px(t), plot.bottom + 19, tickLabel(t), { size: SIZE.tick, anchor: "middle" }));
  }
  out.push(line(plot.left, plot.bottom, plot.right, plot.bottom, "#212529"));
  out.push(line(plot.left, plot.top, plot.left, plot.bottom, "#212529"));
  out.push(
    text((plot.left + plot.right) / 2, plot.bottom + 38, chart.xLabel, {
      size: SIZE.label,
      anchor: "middle",
    }),
  );
  const yMid = (plot.top + plot.bottom) / 2;
  out.push(text(16, yMid, chart.yLabel, { size: SIZE.label, anchor: "middle", rotate: true }));
  chart.series.forEach((s, i) => {
    const color = s.color ?? PALETTE[i % PALETTE.length]!;
    const dash = s.dashed ? ` stroke-dasharray="6 4"` : "";
    const coords = s.points.map(([x, y]) => `${fmt(px(x))},${fmt(py(y))}`).join(" ");
    const marks = s.points.map(([x, y]) =>
      `<circle cx="${fmt(px(x))}" cy="${fmt(py(y))}" r="3.5" fill="${color}">` +
      `<title>${escapeXml(`${s.name}: ${tickLabel(x)}, ${tickLabel(y)}`)}</title></circle>`
    );
    out.push(
      `<g class="series" data-series="${escapeXml(s.name)}">` +
        `<polyline points="${coords}" fill="none" stroke="${color}" stroke-width="2.5"${dash}/>` +
        `${marks.join("")}</g>`,
    );
    const at = legend.items[i]!;
    const ly = plot.bottom + 60 + at.row * LEGEND_ROW;
    out.push(
      `<g class="legend">${line(at.x, ly - 4, at.x + 22, ly - 4, color, 2.5, dash)}` +
        `<circle cx="${at.x + 11}" cy="${ly - 4}" r="3.5" fill="${color}"/>` +
        `${text(at.x + 28, ly, s.name, { size: SIZE.legend })}</g>`,
    );
  });
  return out.join("\n");
}

// Legend items left to right, wrapping to a new row when the next would pass the right margin. Text width
// is estimated (0.53 em a character), which errs wide for the fonts above.
function legendLayout(
  series: Series[],
  width: number,
): { rows: number; items: { x: number; row: number }[] } {
  const items: { x: number; row: number }[] = [];
  let x = MARGIN.left;
  let row = 0;
  for (const s of series) {
    const w = 28 + s.name.length * 0.53 * SIZE.legend + 14;
    if (x + w > width - MARGIN.right && x > MARGIN.left) {
      x = MARGIN.left;
      row++;
    }
    items.push({ x, row });
    x += w;
  }
  return { rows: row + 1, items };
}

// The largest font size up to `max` at which `content` fits in `width` less a margin, estimating a
// character at 0.62 em (bold DejaVu Sans averages less).
function fitSize(content: string, max: number, width: number): number {
  return Math.max(9, Math.min(max, Math.floor((width - 24) / (content.length * 0.62))));
}

/** Round ticks from 0 to at least `max`: 0, 2, 4, 6 or 0, 50, 100… (4 to 8 of them). */
export function niceTicks(max: number): number[] {
  if (!(max > 0)) return [0, 1];
  const raw = max / 5;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) ?? 10 * magnitude;
  const ticks: number[] = [];
  for (let t = 0; t < max + step * 1e-9; t += step) ticks.push(Number(t.toPrecision(12)));
  if (ticks[ticks.length - 1]! < max) ticks.push(Number((ticks.length * step).toPrecision(12)));
  return ticks;
}

function tickLabel(n: number): string {
  if (Number.isInteger(n)) return n.toLocaleString("en-US");
  return Number(n.toPrecision(3)).toString();
}

function fmt(n: number): string {
  return n.toFixed(1);
}

function line(
  x1: number,
  y1: number,
  x2: number,
  y2: number,
  color: string,
  widthPx = 1,
  extra = "",
): string {
  return `<line x1="${fmt(x1)}" y1="${fmt(y1)}" x2="${fmt(x2)}" y2="${fmt(y2)}" stroke="${color}" ` +
    `stroke-width="${widthPx}"${extra}/>`;
}

function text(
  x: number,
  y: number,
  content: string,
  style: { size: number; anchor?: string; weight?: string; rotate?: boolean; color?: string },
): string {
  const attrs = [
    `x="${fmt(x)}"`,
    `y="${fmt(y)}"`,
    `font-size="${style.size}"`,
    `fill="${style.color ?? "#212529"}"`,
    style.anchor ? `text-anchor="${style.anchor}"` : "",
    style.weight ? `font-weight="${style.weight}"` : "",
    style.rotate ? `transform="rotate(-90 ${fmt(x)} ${fmt(y)})"` : "",
  ].filter((a) => a !== "");
  return `<text ${attrs.join(" ")}>${escapeXml(content)}</text>`;
}
