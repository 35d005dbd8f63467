//! The paper's tuning-free baseline, kept only to measure Troupe against (`eval`): the profile
//! as a static system prompt and the most recent messages that fit the context. No summary, no
//! pinned memories, no facts, no example dialogue, no lore. CharacterGLM (§4) finds that such a
//! prompt fades in the later turns of a long conversation; `troupe eval --vs naive` shows by how
//! much on the user's own model. The app never prompts this way.

use crate::engine::{ChatMessage, ChatRole, Engine};

use super::assemble::{Assembled, MESSAGE_OVERHEAD};
use super::context::Context;
use super::{prompt, TurnError};

/// The baseline's prompt for `ctx`: system prompt, the newest history that fits `budget`, then
/// `message`.
pub async fn assemble_naive(
    engine: &dyn Engine,
    ctx: &Context,
    message: Option<&str>,
    budget: usize,
) -> Result<Assembled, TurnError> {
    let system = ChatMessage::new(
        ChatRole::System,
        prompt::system_prompt_for(&ctx.character, ctx.session.scenario, &ctx.user, &[]),
    );
    let history = prompt::history(&ctx.messages);
    let fixed = engine
        .count_prompt_tokens(&[
            system.clone(),
            ChatMessage::new(ChatRole::User, message.unwrap_or("")),
        ])
        .await?;
    // An estimate from the newest message back, then the exact size decides.
    let mut keep = 0;
    let mut used = fixed;
    for m in history.iter().rev() {
        used += engine.count_tokens(&m.content).await? + MESSAGE_OVERHEAD;
        if used > budget {
            break;
        }
        keep += 1;
    }
    loop {
        let kept = &history[history.len() - keep..];
        let mut messages = vec![system.clone()];
        messages.extend_from_slice(kept);
        if let Some(text) = message {
            messages.push(ChatMessage::new(ChatRole::User, text));
        }
        let exact = engine.count_prompt_tokens(&messages).await?;
        if exact <= budget {
            let mut sections = vec![prompt::Section {
                name: "System prompt".into(),
                text: system.content.clone(),
                tokens: 0,
            }];
            if !kept.is_empty() {
                sections.push(prompt::Section {
                    name: format!("History ({} messages)", kept.len()),
                    text: kept
                        .iter()
                        .map(|m| m.content.as_str())
                        .collect::<Vec<_>>()
                        .join("\n\n"),
                    tokens: 0,
                });
            }
            if let Some(text) = message {
                sections.push(prompt::Section {
                    name: "Message".into(),
                    text: text.into(),
                    tokens: 0,
                });
            }
            let dropped = history.len() - keep;
            return Ok(Assembled {
                messages,
                record: prompt::PromptRecord {
                    sections,
                    dropped_messages: dropped,
                    tokens: exact,
                    budget,
                    ..Default::default()
                },
                window_start: ctx.messages.len().saturating_sub(keep),
            });
        }
        if keep == 0 {
            return Err(TurnError::MessageTooLong {
                needed: exact,
                budget,
            });
        }
        keep -= 1;
    }
}
