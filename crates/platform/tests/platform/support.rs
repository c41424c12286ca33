//! Helpers shared by the tests: bounded polling, topic reads, metric lookups.

use rdkafka::Message as _;
use rdkafka::message::{Headers as _, OwnedMessage};
use ticketing_platform::metrics::Metrics;
pub use ticketing_testkit::{eventually, eventually_every, read_topic};

/// The value of header `key` on `message`, as UTF-8.
pub fn header(message: &OwnedMessage, key: &str) -> Option<String> {
    let headers = message.headers()?;
    headers.iter().find(|h| h.key == key).and_then(|h| h.value).map(|v| String::from_utf8_lossy(v).into_owned())
}

/// Sum of the samples of counter `name` whose labels include every `labels` pair.
pub fn counter(metrics: &Metrics, name: &str, labels: &[(&str, &str)]) -> u64 {
    let text = metrics.render();
    text.lines()
        .filter(|line| line.starts_with(&format!("{name}{{")) || line.starts_with(&format!("{name} ")))
        .filter(|line| labels.iter().all(|(k, v)| line.contains(&format!("{k}=\"{v}\""))))
        .map(|line| {
            let value = line.rsplit(' ').next().unwrap_or_default();
            value.parse::<f64>().unwrap_or_else(|_| panic!("unparsable sample {line:?}")) as u64
        })
        .sum()
}
