//! The report's three charts (tickets per day, how long responses took,
//! SLA met per queue), drawn with plotters: as SVG for the report page
//! and as PNG for the report mail (inline images; mail clients do not
//! show SVG).
//!
//! A bitmap needs glyphs: a font is compiled in (assets/fonts) and
//! registered once, so the PNGs look the same on every machine.

use crate::domain::report::Report;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::sync::Once;

const WIDTH: u32 = 640;
const HEIGHT: u32 = 300;
const FONT: &str = "sans-serif";
const CREATED: RGBColor = RGBColor(52, 101, 164);
const RESOLVED: RGBColor = RGBColor(78, 154, 6);
const NEXT: RGBColor = RGBColor(245, 121, 0);
const RESOLUTION: RGBColor = RGBColor(117, 80, 123);

static FONT_BYTES: &[u8] = include_bytes!("../../assets/fonts/DejaVuSansMono.ttf");

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for style in [FontStyle::Normal, FontStyle::Bold] {
            if plotters::style::register_font(FONT, style, FONT_BYTES).is_err() {
                tracing::warn!("report charts: the compiled-in font does not load");
            }
        }
    });
}

/// Which chart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chart {
    Volume,
    ResponseTimes,
    SlaByQueue,
}

impl Chart {
    pub const ALL: [Chart; 3] = [Chart::Volume, Chart::ResponseTimes, Chart::SlaByQueue];

    pub fn title(self) -> &'static str {
        match self {
            Chart::Volume => "Tickets per day",
            Chart::ResponseTimes => "Response times (business hours)",
            Chart::SlaByQueue => "SLA met per queue (%)",
        }
    }

    /// The name of its image in the report mail (`cid:`).
    pub fn file_name(self) -> &'static str {
        match self {
            Chart::Volume => "volume.png",
            Chart::ResponseTimes => "response-times.png",
            Chart::SlaByQueue => "sla-by-queue.png",
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot draw the chart: {0}")]
pub struct ChartError(String);

fn fail(err: impl std::fmt::Display) -> ChartError {
    ChartError(err.to_string())
}

/// The chart as an SVG document.
pub fn svg(report: &Report, chart: Chart) -> Result<String, ChartError> {
    register_font();
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, HEIGHT)).into_drawing_area();
        draw(&root, report, chart)?;
        root.present().map_err(fail)?;
    }
    Ok(out)
}

/// The chart as a PNG image.
pub fn png(report: &Report, chart: Chart) -> Result<Vec<u8>, ChartError> {
    register_font();
    let mut pixels = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (WIDTH, HEIGHT)).into_drawing_area();
        draw(&root, report, chart)?;
        root.present().map_err(fail)?;
    }
    let mut encoded = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut encoded, WIDTH, HEIGHT);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(fail)?;
        writer.write_image_data(&pixels).map_err(fail)?;
        writer.finish().map_err(fail)?;
    }
    Ok(encoded)
}

/// One series of bars: its name, colour and a value per group.
type Series = (&'static str, RGBColor, Vec<f64>);

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    report: &Report,
    chart: Chart,
) -> Result<(), ChartError> {
    root.fill(&WHITE).map_err(fail)?;
    // Grouped bars: one group per label, one bar per series.
    let (labels, series, max): (Vec<String>, Vec<Series>, f64) = match chart {
        Chart::Volume => {
            // The last 31 days at most: a bar a day stays readable.
            let days = &report.volume[report.volume.len().saturating_sub(31)..];
            let labels = days
                .iter()
                .map(|d| d.day.format("%m-%d").to_string())
                .collect();
            let created = days.iter().map(|d| d.created as f64).collect::<Vec<_>>();
            let resolved = days.iter().map(|d| d.resolved as f64).collect::<Vec<_>>();
            let max = created.iter().chain(&resolved).copied().fold(0.0, f64::max);
            (
                labels,
                vec![
                    ("created", CREATED, created),
                    ("resolved", RESOLVED, resolved),
                ],
                max,
            )
        }
        Chart::ResponseTimes => {
            let b = &report.response_times;
            let labels = b.iter().map(|b| b.label.to_string()).collect();
            let first = b
                .iter()
                .map(|b| b.first_response as f64)
                .collect::<Vec<_>>();
            let next = b.iter().map(|b| b.next_response as f64).collect::<Vec<_>>();
            let max = first.iter().chain(&next).copied().fold(0.0, f64::max);
            (
                labels,
                vec![
                    ("first response", CREATED, first),
                    ("next response", NEXT, next),
                ],
                max,
            )
        }
        Chart::SlaByQueue => {
            let q = &report.sla_by_queue;
            let labels = q.iter().map(|q| q.queue.clone()).collect();
            let pick = |f: fn(&crate::domain::report::QueueSla) -> Option<f64>| {
                q.iter().map(|q| f(q).unwrap_or(0.0)).collect::<Vec<_>>()
            };
            (
                labels,
                vec![
                    ("first response", CREATED, pick(|q| q.first_response)),
                    ("next response", NEXT, pick(|q| q.next_response)),
                    ("resolution", RESOLUTION, pick(|q| q.resolution)),
                ],
                100.0,
            )
        }
    };
    let groups = labels.len().max(1);
    // Whole numbers on the axis: counts start at a scale of five.
    let top = if chart == Chart::SlaByQueue {
        // Room above 100% for the legend.
        120.0
    } else {
        (max * 1.15).ceil().max(5.0)
    };
    let mut ctx = ChartBuilder::on(root)
        .caption(chart.title(), (FONT, 18))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(40)
        .build_cartesian_2d(0f64..groups as f64, 0f64..top)
        .map_err(fail)?;
    ctx.configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_labels(6)
        .light_line_style(WHITE)
        .y_label_formatter(&|y| format!("{y:.0}"))
        .label_style((FONT, 12))
        .draw()
        .map_err(fail)?;
    // The labels under the middle of their group (at most a dozen).
    let every = groups.div_ceil(12).max(1);
    let style = TextStyle::from((FONT, 12).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
    for (i, label) in labels.iter().enumerate().step_by(every) {
        let (x, y) = ctx.backend_coord(&(i as f64 + 0.5, 0.0));
        root.draw(&Text::new(label.clone(), (x, y + 6), style.clone()))
            .map_err(fail)?;
    }
    let width = 0.8 / series.len().max(1) as f64;
    for (index, (name, color, values)) in series.iter().enumerate() {
        let color = *color;
        ctx.draw_series(values.iter().enumerate().map(|(i, v)| {
            let x0 = i as f64 + 0.1 + width * index as f64;
            Rectangle::new([(x0, 0.0), (x0 + width, *v)], color.filled())
        }))
        .map_err(fail)?
        .label(*name)
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    ctx.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font((FONT, 12))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(fail)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::report::{
        DayVolume, QueueSla, ReportRow, ResponseBucket, Satisfaction, SlaMet, TimeStat,
    };
    use chrono::{NaiveDate, Utc};

    fn report() -> Report {
        let stat = TimeStat {
            count: 0,
            median_hours: None,
            p90_hours: None,
        };
        let met = SlaMet {
            measured: 0,
            met: 0,
            percent: None,
        };
        let row = ReportRow {
            key: "total".into(),
            created: 0,
            resolved: 0,
            reopened: 0,
            backlog: 0,
            first_response: stat.clone(),
            next_response: stat.clone(),
            resolution: stat,
            sla_first_response: met.clone(),
            sla_next_response: met.clone(),
            sla_resolution: met,
            satisfaction: Satisfaction {
                good: 0,
                okay: 0,
                bad: 0,
                percent_good: None,
            },
            time_spent_minutes: 0,
        };
        let day = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap_or_default();
        Report {
            from: None,
            to: Utc::now(),
            by: None,
            time_zone: "UTC".into(),
            total: row,
            rows: Vec::new(),
            articles: Vec::new(),
            volume: vec![
                DayVolume {
                    day,
                    created: 4,
                    resolved: 2,
                },
                DayVolume {
                    day: day.succ_opt().unwrap_or(day),
                    created: 1,
                    resolved: 3,
                },
            ],
            response_times: vec![ResponseBucket {
                label: "< 1h",
                first_response: 3,
                next_response: 1,
            }],
            sla_by_queue: vec![QueueSla {
                queue: "support".into(),
                first_response: Some(80.0),
                next_response: None,
                resolution: Some(50.0),
            }],
        }
    }

    #[test]
    fn every_chart_draws_as_svg_and_png() {
        let report = report();
        for chart in Chart::ALL {
            let svg = svg(&report, chart).unwrap_or_default();
            assert!(
                svg.contains("<svg") && svg.contains(chart.title()),
                "{chart:?}: {svg}"
            );
            let png = png(&report, chart).unwrap_or_default();
            assert_eq!(png.get(..8), Some(&b"\x89PNG\r\n\x1a\n"[..]), "{chart:?}");
            assert_eq!(png.get(16..20), Some(&640u32.to_be_bytes()[..]));
        }
        let volume = svg(&report, Chart::Volume).unwrap_or_default();
        assert!(
            volume.contains("11-23") && volume.contains("created"),
            "{volume}"
        );
        // Nothing measured still draws (an empty week).
        let empty = Report {
            volume: Vec::new(),
            sla_by_queue: Vec::new(),
            ..report
        };
        assert!(png(&empty, Chart::SlaByQueue).is_ok());
    }
}
