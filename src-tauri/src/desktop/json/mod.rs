//! The wire format between the window and the core: plain data types, converted by hand from
//! the domain types, with TypeScript twins generated into `ui/src/api/types.ts` by the test
//! `bindings_are_current` (run with `UPDATE_BINDINGS=1` to rewrite the file). Core types are not
//! `Serialize` for the UI's sake; only this module knows the JSON. The types live by area, as
//! the UI's `api/` files do: `backups`, `characters`, `conversation`, `engine`, `eval`.
//!
//! Every failure reaches the UI as `ApiError { code, message }`: `code` is for the UI to branch
//! on, `message` is a sentence for the person.

mod arena;
mod backups;
mod characters;
mod conversation;
mod engine;
mod eval;
mod groups;
mod ratings;
mod server;

pub use arena::*;
pub use backups::*;
pub use characters::*;
pub use conversation::*;
pub use engine::*;
pub use eval::*;
pub use groups::*;
pub use ratings::*;
pub use server::*;

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::app::vocabulary::{self as domain, TurnError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The character, session or message does not exist (any more).
    NotFound,
    /// The message was empty; nothing was sent.
    EmptyMessage,
    /// The message cannot fit the context; nothing was stored, the text stays in the box.
    MessageTooLong,
    /// A reply is already being written in this session.
    Busy,
    /// The model is still loading.
    ModelLoading,
    /// No usable model: missing, damaged, unsupported or failed to load. The message says how to fix it.
    ModelUnavailable,
    /// The reply stopped early because the engine failed; the partial reply is saved.
    ReplyFailed,
    /// Regenerate or continue asked of a message that is not the conversation's last reply.
    NotLastReply,
    /// A setting is out of range.
    InvalidSetting,
    /// A model download failed (network, checksum); what arrived is kept for a resume.
    DownloadFailed,
    /// A card file could not be imported (or a Character exported); the message names the
    /// file and the problem, and nothing in the library changed.
    BadCard,
    /// A Character could not be saved: a field is missing or too long, or its picture is
    /// refused. The message says which; nothing changed.
    InvalidCharacter,
    /// The disk is full; nothing saved was lost.
    DiskFull,
    /// A backup file is damaged, foreign or from a newer Troupe, or a restore was refused;
    /// the message names the file and the problem, and the library is as it was.
    BadBackup,
    /// The person pressed Stop; nothing was written or changed.
    Stopped,
    /// Nobody in a group can answer: every member is muted, has left or is in the trash.
    NoSpeaker,
    /// A group cannot be started or changed that way: fewer than two Characters, or one who
    /// is not a member; nothing changed.
    InvalidGroup,
    /// A rating is incomplete or out of range, or rates what cannot be rated; nothing changed.
    InvalidRating,
    /// Anything else.
    Internal,
}

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
        }
    }
}

impl From<crate::app::EditError> for ApiError {
    fn from(e: crate::app::EditError) -> Self {
        match e {
            crate::app::EditError::Store(e) => e.into(),
            e => ApiError::new(ErrorCode::InvalidCharacter, e.to_string()),
        }
    }
}

impl From<domain::FormError> for ApiError {
    fn from(e: domain::FormError) -> Self {
        use domain::FormError;
        match e {
            FormError::Engine(e) => e.into(),
            FormError::Stopped => ApiError::new(ErrorCode::Stopped, e.to_string()),
            e => ApiError::new(ErrorCode::ReplyFailed, e.to_string()),
        }
    }
}

impl From<crate::app::GroupError> for ApiError {
    fn from(e: crate::app::GroupError) -> Self {
        match e {
            crate::app::GroupError::Store(e) => e.into(),
            e => ApiError::new(ErrorCode::InvalidGroup, e.to_string()),
        }
    }
}

impl From<crate::app::RateError> for ApiError {
    fn from(e: crate::app::RateError) -> Self {
        match e {
            crate::app::RateError::Store(e) => e.into(),
            e => ApiError::new(ErrorCode::InvalidRating, e.to_string()),
        }
    }
}

impl From<crate::app::DataError> for ApiError {
    fn from(e: crate::app::DataError) -> Self {
        match e {
            crate::app::DataError::Store(e) => e.into(),
            e => ApiError::new(ErrorCode::Internal, e.to_string()),
        }
    }
}

impl From<crate::app::CardError> for ApiError {
    fn from(e: crate::app::CardError) -> Self {
        ApiError {
            code: ErrorCode::BadCard,
            message: e.to_string(),
        }
    }
}

impl From<crate::app::BackupError> for ApiError {
    fn from(e: crate::app::BackupError) -> Self {
        let code = match &e {
            crate::app::BackupError::Replying => ErrorCode::Busy,
            _ => ErrorCode::BadBackup,
        };
        ApiError::new(code, e.to_string())
    }
}

impl From<domain::StoreError> for ApiError {
    fn from(e: domain::StoreError) -> Self {
        let code = match &e {
            domain::StoreError::CharacterNotFound(_)
            | domain::StoreError::SessionNotFound(_)
            | domain::StoreError::MessageNotFound(_)
            | domain::StoreError::NothingToUndo => ErrorCode::NotFound,
            domain::StoreError::DiskFull => ErrorCode::DiskFull,
            _ => ErrorCode::Internal,
        };
        ApiError::new(code, e.to_string())
    }
}

impl From<domain::EngineError> for ApiError {
    fn from(e: domain::EngineError) -> Self {
        let code = match &e {
            domain::EngineError::NotReady(_) => ErrorCode::ModelLoading,
            domain::EngineError::Backend(_) => ErrorCode::ReplyFailed,
            _ => ErrorCode::ModelUnavailable,
        };
        ApiError::new(code, e.to_string())
    }
}

impl From<TurnError> for ApiError {
    fn from(e: TurnError) -> Self {
        match e {
            TurnError::Store(e) => e.into(),
            TurnError::Engine(e) => e.into(),
            TurnError::EmptyMessage => ApiError::new(ErrorCode::EmptyMessage, e.to_string()),
            TurnError::MessageTooLong { .. } => {
                ApiError::new(ErrorCode::MessageTooLong, e.to_string())
            }
            TurnError::Failed { .. } => ApiError::new(ErrorCode::ReplyFailed, e.to_string()),
            TurnError::NotAReply(_) => ApiError::new(ErrorCode::NotLastReply, e.to_string()),
            TurnError::Busy => ApiError::new(ErrorCode::Busy, e.to_string()),
            TurnError::NoSpeaker => ApiError::new(ErrorCode::NoSpeaker, e.to_string()),
        }
    }
}

impl From<domain::DownloadError> for ApiError {
    fn from(e: domain::DownloadError) -> Self {
        use crate::app::vocabulary::DownloadError as D;
        let code = match &e {
            D::Model(inner) => return inner.clone().into(),
            D::BadRepo(_) | D::BadFile(_) => ErrorCode::InvalidSetting,
            D::Write { reason, .. } if reason.contains("No space") => ErrorCode::DiskFull,
            _ => ErrorCode::DownloadFailed,
        };
        ApiError::new(code, e.to_string())
    }
}

impl From<domain::InvalidSetting> for ApiError {
    fn from(e: domain::InvalidSetting) -> Self {
        ApiError::new(ErrorCode::InvalidSetting, e.to_string())
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

impl From<crate::app::SetSamplingError> for ApiError {
    fn from(e: crate::app::SetSamplingError) -> Self {
        match e {
            crate::app::SetSamplingError::Invalid(..) => {
                ApiError::new(ErrorCode::InvalidSetting, e.to_string())
            }
            crate::app::SetSamplingError::Store(e) => e.into(),
        }
    }
}

impl From<crate::app::Error> for ApiError {
    fn from(e: crate::app::Error) -> Self {
        match e {
            crate::app::Error::Store(e) => e.into(),
            crate::app::Error::Empty(_) => ApiError::new(ErrorCode::EmptyMessage, e.to_string()),
            crate::app::Error::Invalid(_) => {
                ApiError::new(ErrorCode::InvalidSetting, e.to_string())
            }
        }
    }
}

/// The TypeScript twin of every wire type, as one module.
pub fn typescript() -> String {
    let cfg = ts_rs::Config::new().with_large_int("number");
    let decls = [
        ErrorCode::decl(&cfg),
        ApiError::decl(&cfg),
        CategoryJson::decl(&cfg),
        ScenarioJson::decl(&cfg),
        CharacterSummary::decl(&cfg),
        CharacterDetail::decl(&cfg),
        Session::decl(&cfg),
        RoleJson::decl(&cfg),
        MessageStatusJson::decl(&cfg),
        Message::decl(&cfg),
        ReplyStatsJson::decl(&cfg),
        StreamEvent::decl(&cfg),
        EngineStatus::decl(&cfg),
        SamplingJson::decl(&cfg),
        PresetJson::decl(&cfg),
        SamplingLevelJson::decl(&cfg),
        RemoteSettingsJson::decl(&cfg),
        SettingsJson::decl(&cfg),
        ModelFileJson::decl(&cfg),
        DownloadEvent::decl(&cfg),
        CatalogModelJson::decl(&cfg),
        ImportResult::decl(&cfg),
        AttributesJson::decl(&cfg),
        BehavioursJson::decl(&cfg),
        ProfileFormJson::decl(&cfg),
        ProfileFormsJson::decl(&cfg),
        GreetingsJson::decl(&cfg),
        ExchangeJson::decl(&cfg),
        CharacterEdit::decl(&cfg),
        Problem::decl(&cfg),
        CharacterPreview::decl(&cfg),
        AvatarUpload::decl(&cfg),
        Persona::decl(&cfg),
        MemoryKindJson::decl(&cfg),
        Memory::decl(&cfg),
        PromptSection::decl(&cfg),
        LoreFired::decl(&cfg),
        PromptRecord::decl(&cfg),
        SearchHit::decl(&cfg),
        CountsJson::decl(&cfg),
        Backup::decl(&cfg),
        ImportAllResult::decl(&cfg),
        EvalMetric::decl(&cfg),
        EvalProblem::decl(&cfg),
        EvalRun::decl(&cfg),
        EvalEvent::decl(&cfg),
        Scores::decl(&cfg),
        Rating::decl(&cfg),
        Thumb::decl(&cfg),
        RatingAverages::decl(&cfg),
        TrainingData::decl(&cfg),
        ArenaContender::decl(&cfg),
        ArenaEvent::decl(&cfg),
        ArenaTurnJson::decl(&cfg),
        ArenaPicked::decl(&cfg),
        ArenaTally::decl(&cfg),
        ArenaPair::decl(&cfg),
        LocalApi::decl(&cfg),
        LocalApiChange::decl(&cfg),
        StrategyJson::decl(&cfg),
        GroupMember::decl(&cfg),
        Group::decl(&cfg),
    ];
    let mut out = String::from(
        "// Generated from src-tauri/src/desktop/json/ by the test `bindings_are_current`.\n\
         // Do not edit: change the Rust types and run `UPDATE_BINDINGS=1 cargo test bindings`.\n\n",
    );
    for d in decls {
        out.push_str("export ");
        out.push_str(&d);
        out.push_str("\n\n");
    }
    out.trim_end().to_string() + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bindings_are_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui/src/api/types.ts");
        let want = typescript();
        if std::env::var_os("UPDATE_BINDINGS").is_some() {
            std::fs::write(&path, &want).unwrap();
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "ui/src/api/types.ts is stale: run `UPDATE_BINDINGS=1 cargo test bindings`"
        );
    }

    #[test]
    fn errors_serialise_to_code_and_message_only() {
        let e: ApiError = domain::StoreError::CharacterNotFound("x".into()).into();
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!({"code": "not_found", "message": "no character with id 'x'"})
        );
        let e: ApiError = TurnError::MessageTooLong {
            needed: 9000,
            budget: 3896,
        }
        .into();
        assert_eq!(
            serde_json::to_value(&e).unwrap()["code"],
            "message_too_long"
        );
        let e: ApiError = domain::EngineError::ModelMissing {
            path: "/m.gguf".into(),
        }
        .into();
        assert_eq!(
            serde_json::to_value(&e).unwrap()["code"],
            "model_unavailable"
        );
    }

    #[test]
    fn stream_events_are_tagged() {
        let e = StreamEvent::Text { text: "hi".into() };
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!({"event": "text", "data": {"text": "hi"}})
        );
    }

    #[test]
    fn the_api_key_never_goes_to_the_window() {
        let mut s = domain::Settings::default();
        s.remote.api_key = Some("sk-secret".into());
        let form = SettingsJson::from_settings(
            &s,
            std::path::Path::new("/m.gguf"),
            std::path::Path::new("/data"),
        );
        assert!(!serde_json::to_string(&form).unwrap().contains("sk-secret"));
        assert!(form.remote.api_key_set);
        // Saved back untouched the key stays; "" removes it; new text replaces it.
        assert_eq!(
            form.to_settings(&s).remote.api_key.as_deref(),
            Some("sk-secret")
        );
        let mut edited = form.clone();
        edited.remote.api_key = Some(String::new());
        assert_eq!(edited.to_settings(&s).remote.api_key, None);
        edited.remote.api_key = Some(" sk-new ".into());
        assert_eq!(
            edited.to_settings(&s).remote.api_key.as_deref(),
            Some("sk-new")
        );
    }

    #[test]
    fn talkativeness_goes_to_the_card_only_when_changed() {
        let c = domain::Character::blank();
        assert!(!c.card.extensions.contains_key("talkativeness"));
        let form = CharacterEdit::from(c.clone());
        assert_eq!(form.talkativeness, 0.5);
        // Saved as it was: the card stays without the field.
        let same = form.clone().apply(c.clone());
        assert!(!same.card.extensions.contains_key("talkativeness"));
        let mut quiet = form;
        quiet.talkativeness = 0.1;
        let saved = quiet.apply(c);
        assert_eq!(
            saved.card.extensions["talkativeness"],
            serde_json::json!(0.1)
        );
        assert_eq!(CharacterEdit::from(saved).talkativeness, 0.1);
    }
}
