//! docs/benchmarks-dataplane.svg: requests/s, p99 and new connections/s
//! against the number of services, one line per path. Written by hand: a
//! few polylines and axes do not justify a plotting crate and its font
//! and image dependencies.

use std::fmt::Write as _;

use serde_json::Value;

const PANEL_W: f64 = 360.0;
const PANEL_H: f64 = 260.0;
const MARGIN_L: f64 = 64.0;
const MARGIN_T: f64 = 36.0;
const PLOT_W: f64 = PANEL_W - MARGIN_L - 16.0;
const PLOT_H: f64 = PANEL_H - MARGIN_T - 40.0;

/// Paths drawn, with colour and dash.
const SERIES: &[(&str, &str, &str)] = &[
    ("direct_pod", "#555555", "2,3"),
    ("socket_pod", "#1f77b4", ""),
    ("socket_host", "#17becf", ""),
    ("tc_pod", "#2ca02c", ""),
    ("nodeport", "#9467bd", ""),
    ("ipt_pod", "#d62728", "6,3"),
    ("ipt_host", "#ff7f0e", "6,3"),
    ("ipt_nodeport", "#8c564b", "6,3"),
];

/// (title, mode, key, scale) of each panel.
const PANELS: &[(&str, &str, &str, f64)] = &[
    ("requests/s (keep-alive)", "keepalive", "rate", 1.0),
    ("p99 latency, ms (keep-alive)", "keepalive", "p99_ms", 1.0),
    ("new connections/s", "new_connections", "rate", 1.0),
];

fn nice_max(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * mag >= v {
            return m * mag;
        }
    }
    10.0 * mag
}

fn fmt_tick(v: f64) -> String {
    if v >= 1000.0 {
        format!("{}k", (v / 100.0).round() / 10.0)
    } else if v >= 10.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn label(report: &Value, id: &str) -> String {
    report["paths"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["id"] == id)
        .and_then(|p| p["label"].as_str())
        .unwrap_or(id)
        .to_owned()
}

/// The SVG document.
pub fn svg(report: &Value) -> String {
    let points: Vec<&Value> = report["points"].as_array().into_iter().flatten().collect();
    let counts: Vec<String> = points.iter().map(|p| p["services"].to_string()).collect();
    let width = PANEL_W * PANELS.len() as f64;
    let legend_h = 22.0 * SERIES.len().div_ceil(2) as f64 + 10.0;
    let height = PANEL_H + legend_h;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>"
    );
    let x_at = |i: usize| {
        if counts.len() <= 1 {
            PLOT_W / 2.0
        } else {
            PLOT_W * i as f64 / (counts.len() - 1) as f64
        }
    };
    for (panel, (title, mode, key, scale)) in PANELS.iter().enumerate() {
        let ox = panel as f64 * PANEL_W + MARGIN_L;
        let oy = MARGIN_T;
        let value = |p: &Value, id: &str| p["results"][id][*mode][*key].as_f64().map(|v| v * scale);
        let max = points
            .iter()
            .flat_map(|p| SERIES.iter().filter_map(move |(id, _, _)| value(p, id)))
            .fold(0.0, f64::max);
        let top = nice_max(max * 1.05);
        let y_at = |v: f64| oy + PLOT_H - PLOT_H * (v / top);
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"20\" text-anchor=\"middle\" font-size=\"13\" font-weight=\"bold\">{title}</text>",
            ox + PLOT_W / 2.0
        );
        for t in 0..=4 {
            let v = top * f64::from(t) / 4.0;
            let y = y_at(v);
            let _ = writeln!(
                s,
                "<line x1=\"{ox}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#e0e0e0\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                ox + PLOT_W,
                ox - 6.0,
                y + 4.0,
                fmt_tick(v)
            );
        }
        let _ = writeln!(
            s,
            "<line x1=\"{ox}\" x2=\"{ox}\" y1=\"{oy}\" y2=\"{}\" stroke=\"black\"/><line x1=\"{ox}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"black\"/>",
            oy + PLOT_H,
            ox + PLOT_W,
            oy + PLOT_H,
            oy + PLOT_H
        );
        for (i, c) in counts.iter().enumerate() {
            let _ = writeln!(
                s,
                "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{c}</text>",
                ox + x_at(i),
                oy + PLOT_H + 16.0
            );
        }
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#444\">services</text>",
            ox + PLOT_W / 2.0,
            oy + PLOT_H + 32.0
        );
        for (id, colour, dash) in SERIES {
            let pts: Vec<String> = points
                .iter()
                .enumerate()
                .filter_map(|(i, p)| {
                    value(p, id).map(|v| format!("{:.1},{:.1}", ox + x_at(i), y_at(v)))
                })
                .collect();
            if pts.is_empty() {
                continue;
            }
            let dash = if dash.is_empty() {
                String::new()
            } else {
                format!(" stroke-dasharray=\"{dash}\"")
            };
            let _ = writeln!(
                s,
                "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"{dash} points=\"{}\"/>",
                pts.join(" ")
            );
            for p in &pts {
                let (x, y) = p.split_once(',').unwrap_or(("0", "0"));
                let _ = writeln!(
                    s,
                    "<circle cx=\"{x}\" cy=\"{y}\" r=\"3\" fill=\"{colour}\"/>"
                );
            }
        }
    }
    for (i, (id, colour, dash)) in SERIES.iter().enumerate() {
        let x = 20.0 + (i % 2) as f64 * (width / 2.0);
        let y = PANEL_H + 8.0 + 22.0 * (i / 2) as f64;
        let dash = if dash.is_empty() {
            String::new()
        } else {
            format!(" stroke-dasharray=\"{dash}\"")
        };
        let _ = writeln!(
            s,
            "<line x1=\"{x}\" x2=\"{}\" y1=\"{y}\" y2=\"{y}\" stroke=\"{colour}\" stroke-width=\"2\"{dash}/><text x=\"{}\" y=\"{}\">{}</text>",
            x + 28.0,
            x + 34.0,
            y + 4.0,
            label(report, id)
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_panel_draws_the_measured_paths() {
        let point = |n: u64, rate: f64| {
            json!({"services": n, "results": {
                "socket_pod": {"keepalive": {"rate": rate, "p99_ms": 1.0}, "new_connections": {"rate": rate / 4.0}},
                "ipt_pod": {"keepalive": {"rate": rate * 0.9, "p99_ms": 1.2}, "new_connections": {"rate": rate / 8.0}},
            }})
        };
        let report = json!({"points": [point(1, 20000.0), point(10000, 19000.0)], "paths": []});
        let out = svg(&report);
        assert!(out.starts_with("<svg"));
        assert!(out.trim_end().ends_with("</svg>"));
        assert_eq!(out.matches("<polyline").count(), 6);
        assert!(out.contains(">10000</text>"));
        assert_eq!(nice_max(18_500.0), 20_000.0);
        assert_eq!(fmt_tick(25_000.0), "25k");
    }
}
