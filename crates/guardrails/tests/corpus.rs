//! Precision / recall / false-positive rate of every detector over the labelled corpus in
//! `corpus/`. PII lines are labelled with the one kind they contain (or `none`); injection lines
//! are `injection` or `benign`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use agentry_guardrails::{PiiKind, find_pii, injection_score};

struct Line {
    text: String,
    label: String,
}

fn load(name: &str) -> Vec<Line> {
    let path = format!("{}/corpus/{name}", env!("CARGO_MANIFEST_DIR"));
    let raw = std::fs::read_to_string(&path).expect("corpus file");
    raw.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("valid JSON line");
            Line {
                text: v["text"].as_str().expect("text").to_owned(),
                label: v["label"].as_str().expect("label").to_owned(),
            }
        })
        .collect()
}

#[derive(Default, Debug)]
struct Counts {
    tp: usize,
    fp: usize,
    tn: usize,
    fn_: usize,
}

impl Counts {
    fn add(&mut self, actual: bool, predicted: bool) {
        match (actual, predicted) {
            (true, true) => self.tp += 1,
            (false, true) => self.fp += 1,
            (false, false) => self.tn += 1,
            (true, false) => self.fn_ += 1,
        }
    }
    fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }
    fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }
    fn fpr(&self) -> f64 {
        if self.fp + self.tn == 0 {
            0.0
        } else {
            self.fp as f64 / (self.fp + self.tn) as f64
        }
    }
    fn report(&self, name: &str) {
        eprintln!(
            "{name:<14} pos={:<3} neg={:<3} tp={:<3} fp={:<2} fn={:<2} precision={:.3} recall={:.3} fpr={:.4}",
            self.tp + self.fn_,
            self.fp + self.tn,
            self.tp,
            self.fp,
            self.fn_,
            self.precision(),
            self.recall(),
            self.fpr()
        );
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 1.0 } else { a as f64 / b as f64 }
}

fn label_kind(label: &str) -> Option<PiiKind> {
    match label {
        "email" => Some(PiiKind::Email),
        "phone" => Some(PiiKind::Phone),
        "card" => Some(PiiKind::PaymentCard),
        "iban" => Some(PiiKind::Iban),
        "ssn" => Some(PiiKind::Ssn),
        "ip" => Some(PiiKind::IpAddress),
        "secret" => Some(PiiKind::Secret),
        "none" => None,
        other => panic!("unknown PII label {other}"),
    }
}

#[test]
fn pii_corpus_meets_targets() {
    let lines = load("pii.jsonl");
    assert!(lines.len() >= 150, "corpus too small: {}", lines.len());
    let mut overall = Counts::default();
    let mut per_kind: Vec<(PiiKind, Counts)> = PiiKind::ALL
        .iter()
        .map(|&k| (k, Counts::default()))
        .collect();
    for line in &lines {
        let expected = label_kind(&line.label);
        let found: Vec<PiiKind> = find_pii(&line.text).into_iter().map(|f| f.kind).collect();
        // Overall: a positive line must yield a finding of its kind; a `none` line none at all.
        let predicted = match expected {
            Some(k) => found.contains(&k),
            None => !found.is_empty(),
        };
        overall.add(expected.is_some(), predicted);
        if expected.is_some() != predicted || (expected.is_none() && !found.is_empty()) {
            eprintln!(
                "MISS  label={:<6} found={found:?}  {:?}",
                line.label, line.text
            );
        }
        for (kind, counts) in &mut per_kind {
            counts.add(expected == Some(*kind), found.contains(kind));
        }
    }
    eprintln!("PII corpus: {} lines", lines.len());
    for (kind, counts) in &per_kind {
        counts.report(kind.label());
    }
    overall.report("PII overall");
    assert!(overall.recall() >= 0.99, "PII recall {}", overall.recall());
    assert!(overall.fpr() <= 0.01, "PII FPR {}", overall.fpr());
    for (kind, counts) in &per_kind {
        assert!(
            counts.recall() >= 0.99,
            "{kind:?} recall {}",
            counts.recall()
        );
        assert!(counts.fpr() <= 0.01, "{kind:?} FPR {}", counts.fpr());
    }
}

#[test]
fn injection_corpus_meets_targets() {
    let lines = load("injection.jsonl");
    assert!(lines.len() >= 100, "corpus too small: {}", lines.len());
    let mut counts = Counts::default();
    for line in &lines {
        let actual = match line.label.as_str() {
            "injection" => true,
            "benign" => false,
            other => panic!("unknown injection label {other}"),
        };
        let v = injection_score(&line.text);
        counts.add(actual, v.flagged);
        if actual != v.flagged {
            eprintln!(
                "MISS  label={:<9} score={:.2} reasons={:?}  {:?}",
                line.label, v.score, v.reasons, line.text
            );
        }
    }
    eprintln!("injection corpus: {} lines", lines.len());
    counts.report("injection");
    assert!(
        counts.recall() >= 0.90,
        "injection recall {}",
        counts.recall()
    );
    assert!(counts.fpr() <= 0.05, "injection FPR {}", counts.fpr());
}
