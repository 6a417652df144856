//! Guardrail detectors for Agentry.
//!
//! * [`find_pii`] / [`redact`]: personal data and secrets (email, phone, payment card, IBAN, US SSN,
//!   IP address, API keys / high-entropy tokens), with checksum validation where one exists.
//! * [`injection_score`]: rule-based prompt-injection scoring, including text hidden with Unicode
//!   tag characters or zero-width characters.
//! * [`strip_untrusted_images`]: removes markdown / HTML images pointing at hosts that are not
//!   allowed (zero-click exfiltration through image URLs).
//!
//! * [`GuardrailPolicy`] / [`CompiledPolicy`]: which of these run on a run's input, output and
//!   tool results, and whether they flag, redact or block, with [`GuardrailEvent`]s for the trace.
//!
//! Every pattern uses the `regex` crate (finite automata, linear time in the input), and all the
//! hand-written scanners are single-pass, so the detectors are safe on adversarial input.

mod images;
mod injection;
mod pii;
mod policy;

pub use images::strip_untrusted_images;
pub use injection::{FLAG_THRESHOLD, InjectionVerdict, injection_score};
pub use pii::{Finding, PiiKind, find_pii, redact, shannon_entropy};
pub use policy::{
    Action, Checked, CompiledPolicy, GuardrailEvent, GuardrailPolicy, ImagesRule, InjectionRule,
    InputPolicy, MaxCharsRule, OutputPolicy, PiiRule, PolicyError, Stage, ToolResultPolicy,
    TopicRule,
};
