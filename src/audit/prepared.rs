//! The parts of a run's records that do not change from one run of a loaded plugin to
//! the next, composed once: its `plugin` and `policy` objects, the `limits` and
//! `confinement` of its `run_start`, and `who` (read when the plugin was loaded: the
//! process that loaded it runs it), each one JSON text made through the redactor it
//! is kept with. A run without a load's parts reads `who` when it starts, and composes
//! it again only when the answer changed.
//!
//! A host that loads a plugin once and runs it many times builds one [`Prepared`] per
//! load and hands it to each run's [`super::AuditRun`]; a run without one (the
//! command line's single run, a load's records) builds its own as its `plugin` and
//! `policy` become known. Either way a record is composed once, from these fragments
//! and the run's own fields, straight into the message the writer appends.
//!
//! # Security
//!
//! The one choke point of `redact` still holds: a [`Redacted`] is made only by
//! [`Prepared::fields`], which passes every string of what it serializes through the
//! redactor this [`Prepared`] holds, and a run's records are composed only from
//! [`Redacted`] parts of the run's own [`Prepared`]: the fragments were redacted by
//! the very redactor the run's other fields pass. Replacing the redactor
//! ([`Prepared::with_redactor`]) composes every fragment again.

use super::AuditError;
use super::record::{
    Event, LimitsRecord, PluginInfo, PolicyInfo, RunStartFixed, RunStartLoad, Who,
};
use super::redact::{self, Redactor};
use crate::confinement::Confinement;
use serde::Serialize;
use std::borrow::Cow;
use std::sync::{Arc, Mutex, PoisonError};

/// A record's part (its fields, `plugin`, `policy`, `who`) serialized through the
/// run's redactor: a JSON object. Only [`Prepared::fields`] makes one, and a record
/// is emitted only from these: no string reaches the log past the redactor.
#[derive(Debug, Clone)]
pub(super) struct Redacted(String);

impl Redacted {
    /// The JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The members of the object, `"a":1,"b":2` (empty for `{}`).
    pub fn members(&self) -> &str {
        self.0
            .strip_prefix('{')
            .and_then(|o| o.strip_suffix('}'))
            .unwrap_or_default()
    }
}

fn record_error(event: Event, e: serde_json::Error) -> AuditError {
    AuditError::Record {
        event: event.as_str(),
        message: e.to_string(),
    }
}

/// The fixed parts of a run's records and the redactor they passed.
#[derive(Debug, Default)]
pub(crate) struct Prepared {
    redactor: Arc<Redactor>,
    plugin: Option<PluginInfo>,
    policy: Option<PolicyInfo>,
    /// `,"plugin":{…},"policy":{…}` as every record of the run carries them.
    common: String,
    /// A failure to compose `common` with a new redactor, reported by every record.
    broken: Option<AuditError>,
    /// `run_start`'s `limits` and `confinement` for the load's own.
    start: Option<Start>,
    /// `run_start`'s `load` for the load's own id.
    load: Option<(String, Redacted)>,
    /// `who` of the load's runs, read when it was loaded.
    load_who: Option<Redacted>,
    /// `who` as last composed, and for which answer (without `load_who`).
    who: Mutex<Option<(Who, Redacted)>>,
}

#[derive(Debug)]
struct Start {
    limits: LimitsRecord,
    confinement: Confinement,
    json: Redacted,
}

impl Prepared {
    /// The fixed parts of a load's runs: `plugin`, `policy`, and `run_start`'s
    /// `limits` and `confinement`, composed through `redactor`.
    ///
    /// # Errors
    ///
    /// [`AuditError::Record`] when one cannot be serialized.
    pub fn for_load(
        redactor: Arc<Redactor>,
        load_id: &str,
        policy: &PolicyInfo,
        plugin: &PluginInfo,
        limits: &crate::limits::Limits,
        confinement: &Confinement,
    ) -> Result<Prepared, AuditError> {
        let mut prepared = Prepared {
            redactor,
            ..Prepared::default()
        }
        .with_policy(policy)?
        .with_plugin(plugin)?;
        let limits = LimitsRecord::from(limits);
        let json = prepared.fields(
            Event::RunStart,
            &RunStartFixed {
                limits: &limits,
                confinement,
            },
        )?;
        prepared.start = Some(Start {
            limits,
            confinement: confinement.clone(),
            json,
        });
        prepared.load_who = Some(prepared.fields(Event::RunStart, &Who::current())?);
        let load = prepared.fields(Event::RunStart, &RunStartLoad { load: load_id })?;
        prepared.load = Some((load_id.to_owned(), load));
        Ok(prepared)
    }

    /// The run's redactor.
    pub(super) fn redactor(&self) -> &Arc<Redactor> {
        &self.redactor
    }

    /// `fields` as JSON, through the redactor: the choke point every part of every
    /// record passes (only this makes a [`Redacted`]).
    pub(super) fn fields<T: Serialize + ?Sized>(
        &self,
        event: Event,
        fields: &T,
    ) -> Result<Redacted, AuditError> {
        redact::to_json(fields, &self.redactor)
            .map(Redacted)
            .map_err(|e| record_error(event, e))
    }

    /// `,"plugin":{…},"policy":{…}` as every record of the run carries them.
    pub(super) fn common(&self) -> Result<&str, AuditError> {
        match &self.broken {
            Some(e) => Err(e.clone()),
            None => Ok(&self.common),
        }
    }

    fn compose_common(&mut self) -> Result<(), AuditError> {
        let mut common = String::new();
        if let Some(plugin) = &self.plugin {
            common.push_str(",\"plugin\":");
            common.push_str(self.fields(Event::PluginLoaded, plugin)?.as_str());
        }
        if let Some(policy) = &self.policy {
            common.push_str(",\"policy\":");
            common.push_str(self.fields(Event::PolicyLoaded, policy)?.as_str());
        }
        self.common = common;
        Ok(())
    }

    /// These parts with `policy` attached.
    ///
    /// # Errors
    ///
    /// When it cannot be serialized.
    pub(super) fn with_policy(&self, policy: &PolicyInfo) -> Result<Prepared, AuditError> {
        let mut next = self.copy();
        next.policy = Some(policy.clone());
        next.compose_common()?;
        Ok(next)
    }

    /// These parts with `plugin` attached.
    ///
    /// # Errors
    ///
    /// When it cannot be serialized.
    pub(super) fn with_plugin(&self, plugin: &PluginInfo) -> Result<Prepared, AuditError> {
        let mut next = self.copy();
        next.plugin = Some(plugin.clone());
        next.compose_common()?;
        Ok(next)
    }

    /// These parts composed again through `redactor` (a failure is reported by the
    /// next record).
    pub(super) fn with_redactor(&self, redactor: Arc<Redactor>) -> Prepared {
        let mut next = Prepared {
            redactor,
            plugin: self.plugin.clone(),
            policy: self.policy.clone(),
            ..Prepared::default()
        };
        if let Err(e) = next.compose_common() {
            next.broken = Some(e);
        }
        next
    }

    /// The same parts, without the `run_start` and `who` fragments (which are
    /// composed again when needed).
    fn copy(&self) -> Prepared {
        Prepared {
            redactor: Arc::clone(&self.redactor),
            plugin: self.plugin.clone(),
            policy: self.policy.clone(),
            common: self.common.clone(),
            broken: self.broken.clone(),
            ..Prepared::default()
        }
    }

    /// `{"limits":{…},"confinement":{…}}` of a `run_start` under `limits` and
    /// `confinement`: the load's, composed once, when they are the load's.
    pub(super) fn start(
        &self,
        limits: &LimitsRecord,
        confinement: &Confinement,
    ) -> Result<Cow<'_, Redacted>, AuditError> {
        match &self.start {
            Some(start) if start.limits == *limits && start.confinement == *confinement => {
                Ok(Cow::Borrowed(&start.json))
            }
            _ => self
                .fields(
                    Event::RunStart,
                    &RunStartFixed {
                        limits,
                        confinement,
                    },
                )
                .map(Cow::Owned),
        }
    }

    /// `{"load":…}` of a `run_start` of the load `load_id`: composed once for the
    /// load's own id.
    pub(super) fn load(&self, load_id: &str) -> Result<Cow<'_, Redacted>, AuditError> {
        match &self.load {
            Some((id, json)) if id == load_id => Ok(Cow::Borrowed(json)),
            _ => self
                .fields(Event::RunStart, &RunStartLoad { load: load_id })
                .map(Cow::Owned),
        }
    }

    /// `who`: the load's, or for this process now, composed again only when its
    /// answer changed (the working directory, say).
    pub(super) fn who(&self, event: Event) -> Result<Cow<'_, Redacted>, AuditError> {
        if let Some(who) = &self.load_who {
            return Ok(Cow::Borrowed(who));
        }
        let now = Who::current();
        let mut cached = self.who.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((who, json)) = &*cached
            && *who == now
        {
            return Ok(Cow::Owned(json.clone()));
        }
        let json = self.fields(event, &now)?;
        *cached = Some((now, json.clone()));
        Ok(Cow::Owned(json))
    }
}
