//! `memshelf top NAME`: a live view of one segment (ratatui + crossterm):
//! rates per second, hit ratio, memory, sampled latency (p50/p99 of get and
//! put) and hot keys, and the health of an agent serving the segment.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use memshelf::{Cache, Stats};
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Gauge, Paragraph};
use ratatui::{DefaultTerminal, Frame};

use crate::output;

struct Sample {
    at: Instant,
    stats: Stats,
    hot: Vec<(Vec<u8>, u64)>,
}

/// Hot keys shown.
const HOT_SHOWN: usize = 5;

/// The agent's health, read from its `/metrics`.
#[derive(Default)]
struct AgentHealth {
    connected: Option<f64>,
    degraded: Option<f64>,
    coherent: Option<f64>,
    last_message_age: Option<f64>,
    gaps: f64,
    reconnects: Option<f64>,
    serves: bool,
}

struct State {
    name: String,
    interval: Duration,
    prev: Option<Sample>,
    cur: Sample,
    agent_addr: Option<String>,
    agent: Option<Result<AgentHealth, String>>,
}

/// Runs the view until `q`, `Esc` or Ctrl-C.
pub fn run(name: &str, interval: Duration, agent: Option<String>) -> Result<(), String> {
    use std::io::IsTerminal;
    let cache = crate::attach(name)?;
    if !std::io::stdout().is_terminal() {
        return Err(
            "top needs a terminal; for a log of the counters use `memshelf stats NAME --watch [--json]`"
                .into(),
        );
    }
    let mut state = State {
        name: name.to_string(),
        interval,
        prev: None,
        cur: sample(&cache),
        agent: agent.as_deref().map(scrape_agent_for(name)),
        agent_addr: agent,
    };
    let mut terminal =
        ratatui::try_init().map_err(|e| format!("cannot set up the terminal: {e}"))?;
    let result = event_loop(&mut terminal, &cache, &mut state);
    ratatui::restore();
    result
}

fn sample(cache: &Cache) -> Sample {
    Sample {
        at: Instant::now(),
        stats: cache.stats(),
        hot: cache.hot_keys(HOT_SHOWN),
    }
}

fn event_loop(
    terminal: &mut DefaultTerminal,
    cache: &Cache,
    state: &mut State,
) -> Result<(), String> {
    let err = |e: std::io::Error| e.to_string();
    let mut next = Instant::now() + state.interval;
    loop {
        terminal.draw(|f| draw(f, state)).map_err(err)?;
        let timeout = next.saturating_duration_since(Instant::now());
        if event::poll(timeout).map_err(err)?
            && let Event::Key(k) = event::read().map_err(err)?
        {
            let quit = matches!(k.code, KeyCode::Char('q') | KeyCode::Esc)
                || (k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL));
            if k.kind == KeyEventKind::Press && quit {
                return Ok(());
            }
        }
        if Instant::now() >= next {
            let s = sample(cache);
            state.prev = Some(std::mem::replace(&mut state.cur, s));
            if let Some(a) = &state.agent_addr {
                state.agent = Some(scrape_agent_for(&state.name)(a));
            }
            next += state.interval;
            if next < Instant::now() {
                next = Instant::now() + state.interval;
            }
        }
    }
}

fn per_sec(state: &State, get: impl Fn(&Stats) -> u64) -> Option<f64> {
    let prev = state.prev.as_ref()?;
    let dt = state.cur.at.duration_since(prev.at).as_secs_f64();
    (dt > 0.0).then(|| get(&state.cur.stats).wrapping_sub(get(&prev.stats)) as f64 / dt)
}

fn ratio(hits: u64, misses: u64) -> String {
    match hits + misses {
        0 => "n/a".into(),
        n => format!("{:.1} %", 100.0 * hits as f64 / n as f64),
    }
}

fn draw(f: &mut Frame, state: &State) {
    let s = &state.cur.stats;
    let [title, rates, ratio_mem, latency, hot, agent, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(9),
        Constraint::Length(5),
        Constraint::Length(4),
        Constraint::Length(HOT_SHOWN as u16 + 2),
        Constraint::Length(4),
        Constraint::Length(1),
    ])
    .areas(f.area());

    f.render_widget(
        Line::from(vec![
            Span::styled(
                " memshelf top ",
                Style::new().add_modifier(Modifier::REVERSED),
            ),
            Span::raw(format!(
                " {}  capacity {}  layout v{}",
                state.name,
                output::bytes(s.capacity_bytes),
                s.layout_version
            )),
        ]),
        title,
    );

    type Get = fn(&Stats) -> u64;
    let rows: [(&str, Get); 7] = [
        ("hits", |s| s.hits),
        ("misses", |s| s.misses),
        ("puts", |s| s.inserts.wrapping_add(s.updates)),
        ("deletes", |s| s.deletes),
        ("evictions", |s| s.evictions),
        ("expirations", |s| s.expirations),
        ("waits", |s| s.get_or_set_waits),
    ];
    let lines: Vec<Line> = rows
        .iter()
        .map(|(label, get)| {
            let rate = per_sec(state, get).map_or_else(|| "-".to_string(), |r| format!("{r:.1}"));
            Line::from(format!(" {label:<12} {rate:>12}/s {:>16} total", get(s)))
        })
        .collect();
    f.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" rates ")),
        rates,
    );

    let interval_ratio = match &state.prev {
        Some(p) => ratio(
            s.hits.wrapping_sub(p.stats.hits),
            s.misses.wrapping_sub(p.stats.misses),
        ),
        None => "n/a".into(),
    };
    let [ratio_area, mem_area] =
        Layout::vertical([Constraint::Length(2), Constraint::Length(3)]).areas(ratio_mem);
    f.render_widget(
        Paragraph::new(vec![
            Line::from(format!(
                " hit ratio    {interval_ratio:>8} (last {:.1} s)   {:>8} (lifetime)",
                state.interval.as_secs_f64(),
                ratio(s.hits, s.misses)
            )),
            Line::from(format!(" entries      {:>8}", s.entries)),
        ]),
        ratio_area,
    );
    // used_bytes fills up to data_bytes (the rest of the capacity is the
    // header and the index).
    let room = if s.data_bytes > 0 {
        s.data_bytes
    } else {
        s.capacity_bytes
    };
    let used = if room == 0 {
        0.0
    } else {
        (s.used_bytes as f64 / room as f64).clamp(0.0, 1.0)
    };
    f.render_widget(
        Gauge::default()
            .block(Block::bordered().title(" memory "))
            .gauge_style(Style::new().fg(Color::Cyan))
            .ratio(used)
            .label(format!(
                "{} of {} for items ({:.1} %), segment {}",
                output::bytes(s.used_bytes),
                output::bytes(room),
                used * 100.0,
                output::bytes(s.capacity_bytes)
            )),
        mem_area,
    );

    let lat = |name: &str, h: &memshelf::Histogram| {
        let q = |q: f64| h.quantile(q).map_or_else(|| "n/a".to_string(), duration);
        Line::from(format!(
            " {name}  p50 {:>9}   p99 {:>9}   ({} samples)",
            q(0.5),
            q(0.99),
            h.count()
        ))
    };
    f.render_widget(
        Paragraph::new(vec![lat("get", &s.get_latency), lat("put", &s.put_latency)])
            .block(Block::bordered().title(" latency (sampled, bucket upper bounds) ")),
        latency,
    );
    let hot_lines: Vec<Line> = if state.cur.hot.is_empty() {
        vec![Line::from(" no sampled hits yet".dim())]
    } else {
        let shares = crate::hot::shares(&state.cur.hot, s);
        state
            .cur
            .hot
            .iter()
            .zip(shares)
            .map(|((k, c), share)| {
                Line::from(format!(
                    " {:>6.1} %  {c:>10}  {}",
                    share * 100.0,
                    k.escape_ascii()
                ))
            })
            .collect()
    };
    f.render_widget(
        Paragraph::new(hot_lines).block(Block::bordered().title(format!(
            " hot keys (top key {:.1} % of sampled hits) ",
            s.hot_key_share * 100.0
        ))),
        hot,
    );

    let agent_lines = match &state.agent {
        None => vec![Line::from(
            " n/a (--agent HOST:PORT shows the health of the agent serving this segment)".dim(),
        )],
        Some(Err(e)) => vec![Line::from(
            format!(" cannot read the agent's metrics: {e}").red(),
        )],
        Some(Ok(a)) => {
            let flag = |v: Option<f64>, yes: &str, no: &str| match v {
                Some(x) if x > 0.0 => yes.to_string(),
                Some(_) => no.to_string(),
                None => "n/a".to_string(),
            };
            vec![
                Line::from(format!(
                    " {}  degraded {}  coherent {}  serves this segment {}",
                    flag(a.connected, "connected", "DISCONNECTED"),
                    flag(a.degraded, "YES", "no"),
                    flag(a.coherent, "yes", "NO"),
                    if a.serves { "yes" } else { "NO" },
                )),
                Line::from(format!(
                    " last message {}  gaps {}  reconnects {}",
                    a.last_message_age
                        .map_or_else(|| "n/a".into(), |s| format!("{s:.1} s ago")),
                    a.gaps,
                    a.reconnects.map_or_else(|| "n/a".into(), |r| r.to_string()),
                )),
            ]
        }
    };
    f.render_widget(
        Paragraph::new(agent_lines).block(Block::bordered().title(" agent ")),
        agent,
    );
    f.render_widget(
        Line::from(format!(
            " q quit   refreshed every {:.1} s",
            state.interval.as_secs_f64()
        ))
        .dim(),
        footer,
    );
}

/// `512 ns`, `1.0 µs`, `2.1 ms`, `1.50 s`.
fn duration(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    if ns < 1e3 {
        format!("{ns:.0} ns")
    } else if ns < 1e6 {
        format!("{:.1} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.1} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

fn scrape_agent_for(name: &str) -> impl Fn(&str) -> Result<AgentHealth, String> + '_ {
    move |addr| scrape_agent(addr, name)
}

/// GET /metrics from `addr` (`host:port` or `http://host:port[/path]`).
fn scrape_agent(addr: &str, segment: &str) -> Result<AgentHealth, String> {
    let rest = addr.strip_prefix("http://").unwrap_or(addr);
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/metrics"),
    };
    let timeout = Duration::from_millis(500);
    let sock = hostport
        .to_socket_addrs()
        .map_err(|e| format!("{hostport}: {e}"))?
        .next()
        .ok_or_else(|| format!("{hostport}: no address"))?;
    let mut s =
        TcpStream::connect_timeout(&sock, timeout).map_err(|e| format!("{hostport}: {e}"))?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {hostport}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut body = Vec::new();
    s.take(16 << 20)
        .read_to_end(&mut body)
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&body);
    let (head, metrics) = text.split_once("\r\n\r\n").ok_or("not an HTTP answer")?;
    if !head.starts_with("HTTP/1.") || head.split_whitespace().nth(1) != Some("200") {
        return Err(head.lines().next().unwrap_or_default().to_string());
    }
    Ok(parse_agent(metrics, segment))
}

fn parse_agent(metrics: &str, segment: &str) -> AgentHealth {
    let mut a = AgentHealth::default();
    let cache_label = format!("cache=\"{segment}\"");
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(v) = value.parse::<f64>() else {
            continue;
        };
        let name = series.split('{').next().unwrap_or_default();
        match name {
            "memshelf_agent_connected" => a.connected = Some(v),
            "memshelf_agent_degraded" => a.degraded = Some(a.degraded.unwrap_or(0.0).max(v)),
            "memshelf_agent_coherent" => a.coherent = Some(v),
            "memshelf_agent_last_message_age_seconds" => a.last_message_age = Some(v),
            "memshelf_agent_reconnects_total" => a.reconnects = Some(v),
            "memshelf_agent_gaps_total" => a.gaps += v,
            "memshelf_capacity_bytes" if series.contains(&cache_label) => a.serves = true,
            _ => {}
        }
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration(Duration::from_nanos(512)), "512 ns");
        assert_eq!(duration(Duration::from_nanos(1024)), "1.0 µs");
        assert_eq!(duration(Duration::from_nanos(2 << 20)), "2.1 ms");
        assert_eq!(duration(Duration::from_millis(1500)), "1.50 s");
    }

    #[test]
    fn parses_agent_metrics() {
        let text = "# TYPE memshelf_agent_connected gauge\nmemshelf_agent_connected 1\n\
            memshelf_agent_gaps_total{reason=\"startup\"} 1\nmemshelf_agent_gaps_total{reason=\"seq\"} 2\n\
            memshelf_capacity_bytes{cache=\"users\"} 1048576\nmemshelf_agent_coherent 0\n";
        let a = parse_agent(text, "users");
        assert_eq!(
            (a.connected, a.coherent, a.degraded),
            (Some(1.0), Some(0.0), None)
        );
        assert_eq!(a.gaps, 3.0);
        assert!(a.serves);
        assert!(!parse_agent(text, "other").serves);
    }
}
