//! The `repetition` suite: a 20-turn chit-chat with scripted, ordinary messages from the
//! person, and what the Character's replies repeat: distinct-1 and distinct-2 over all replies,
//! the longest run of words two replies share, and the share of replies that loop (a phrase
//! three times inside one reply, or most of one reply copied from an earlier one).

use crate::characters::Scenario;

use super::metrics::{distinct, longest_repeat, loops};
use super::probe::Bench;
use super::{Better, Scores, Suite};

/// What the person says, one line per turn (cycled past 20).
const LINES: &[&str] = &[
    "Hi! How has your day been?",
    "What did you do this morning?",
    "That sounds nice. What do you like most about it?",
    "Do you have a favourite place to go?",
    "Why that place?",
    "I've never been anywhere like that.",
    "What would you recommend I try first?",
    "Is there anything you would change about your life?",
    "What keeps you going on hard days?",
    "Do you have friends you see often?",
    "Tell me a story about one of them.",
    "Ha, that's funny. What happened next?",
    "What are you looking forward to?",
    "What's something most people get wrong about you?",
    "If you could learn anything, what would it be?",
    "What did you want to be when you were young?",
    "Do you think you became that?",
    "What's the best meal you've ever had?",
    "It's getting late here.",
    "Thanks for the chat. Any last words of wisdom?",
];

pub(super) async fn run(
    bench: &mut Bench<'_>,
    turns: usize,
    scores: &mut Scores,
) -> anyhow::Result<()> {
    let session = bench.session(Scenario::ChitChat)?;
    let mut replies: Vec<String> = Vec::new();
    for i in 0..turns {
        let reply = bench.say(session, LINES[i % LINES.len()]).await?;
        let looped = loops(&reply.text, &replies);
        scores.add(
            Suite::Repetition,
            "loops",
            f64::from(u8::from(looped)),
            Better::Lower,
            "share",
        );
        replies.push(reply.text);
    }
    scores.add(
        Suite::Repetition,
        "distinct_1",
        distinct(&replies, 1),
        Better::Higher,
        "share",
    );
    scores.add(
        Suite::Repetition,
        "distinct_2",
        distinct(&replies, 2),
        Better::Higher,
        "share",
    );
    scores.add(
        Suite::Repetition,
        "longest_repeat",
        longest_repeat(&replies) as f64,
        Better::Lower,
        "words",
    );
    Ok(())
}
