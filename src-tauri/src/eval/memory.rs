//! The `memory` suite: does the Character remember what the person told it, long after it left
//! the verbatim history? Facts are told in the first turns of a companionship Session, each in
//! an ordinary sentence (many phrasings, most not the shapes the fact rules look for); then
//! scripted small talk pushes the conversation past the whole context (so the paper's baseline,
//! which keeps only the most recent turns that fit, has lost them); then each fact is asked
//! about. Metrics, per fact: kept as a fact Memory, present in the prompt, named in the reply.

use crate::characters::Scenario;

use super::metrics::mentions;
use super::probe::Bench;
use super::{Better, Scores, Suite};

/// A fact as a person tells it, the question that asks for it, and the words of a right answer.
pub(super) struct Fact {
    pub told: &'static str,
    pub question: &'static str,
    pub answers: &'static [&'static str],
}

/// Twenty facts, two told to each Character (the ninth Character gets the 17th and 18th).
pub(super) const FACTS: &[Fact] = &[
    Fact {
        told: "Ugh, Pepper chewed through another pair of my shoes today. Beagles, honestly.",
        question: "Do you remember my dog's name?",
        answers: &["pepper"],
    },
    Fact {
        told: "Long shift again, twelve hours on the children's ward. Nursing is no joke.",
        question: "What do I do for work?",
        answers: &["nurse", "nursing", "ward"],
    },
    Fact {
        told: "It's been raining here in Porto all week, the river has gone brown.",
        question: "Which city do I live in?",
        answers: &["porto"],
    },
    Fact {
        told: "Had to skip the cake at the party, peanuts again. One bite and I swell up.",
        question: "What am I allergic to?",
        answers: &["peanut", "peanuts"],
    },
    Fact {
        told: "My little sister Ines just started university, I can't believe it.",
        question: "What's my sister's name?",
        answers: &["ines"],
    },
    Fact {
        told: "Been practising the cello every evening for the spring concert.",
        question: "Which instrument do I play?",
        answers: &["cello"],
    },
    Fact {
        told: "Came home to find Miso asleep in the laundry basket again. That cat owns this flat.",
        question: "What's my cat called?",
        answers: &["miso"],
    },
    Fact {
        told: "Spent Saturday under the old Vespa I'm restoring, grease everywhere.",
        question: "What am I restoring?",
        answers: &["vespa", "scooter"],
    },
    Fact {
        told: "Twelve years vegetarian now and I still miss bacon sandwiches sometimes.",
        question: "What kind of diet do I follow?",
        answers: &["vegetarian"],
    },
    Fact {
        told: "Tomas and I are celebrating five years together next month.",
        question: "What's my partner's name?",
        answers: &["tomas"],
    },
    Fact {
        told: "Grew up in a tiny village near Galway, fifty sheep to every person.",
        question: "Where did I grow up?",
        answers: &["galway"],
    },
    Fact {
        told: "Finished my first half marathon on Sunday, legs are still angry at me.",
        question: "What race did I just run?",
        answers: &["marathon", "half marathon"],
    },
    Fact {
        told: "The bakery opens at five, so I'm up at three shaping dough.",
        question: "Where do I work?",
        answers: &["bakery", "baker"],
    },
    Fact {
        told: "Three months into learning Japanese and I can finally read a menu.",
        question: "Which language am I learning?",
        answers: &["japanese"],
    },
    Fact {
        told: "Flying terrifies me, so I took the train all the way to Vienna.",
        question: "What am I afraid of?",
        answers: &["flying", "fly", "planes", "plane"],
    },
    Fact {
        told: "Our son Leo lost his first tooth this morning and wants a pound for it.",
        question: "What's my son's name?",
        answers: &["leo"],
    },
    Fact {
        told: "Turning forty on the ninth of March, and dreading it a little.",
        question: "How old am I about to turn?",
        answers: &["forty", "40"],
    },
    Fact {
        told: "The lemon tree on the balcony finally has three little lemons on it.",
        question: "What's growing on my balcony?",
        answers: &["lemon", "lemons"],
    },
    Fact {
        told: "Grandma Rosa taught me her soup recipe before she passed.",
        question: "Who taught me the soup recipe?",
        answers: &["rosa", "grandma", "grandmother"],
    },
    Fact {
        told: "Cycling to work along the canal every morning keeps me sane.",
        question: "How do I get to work?",
        answers: &["cycling", "cycle", "bike", "bicycle"],
    },
];

/// Small talk that carries no fact about the person, as (person, Character) exchanges.
const FILLER: &[(&str, &str)] = &[
    ("What do you think makes a good evening?", "Good company, something warm to drink, and nowhere to hurry to. The rest tends to sort itself out once those three are in place."),
    ("The weather keeps changing its mind today.", "It does that. I have learned to carry a coat and an umbrella and to stop arguing with the sky about it."),
    ("Do you ever just sit and watch people go by?", "Often. Everyone walking past is in the middle of a story, and you only ever get to see one page of it."),
    ("I read something funny in the paper this morning.", "The papers are funnier than they mean to be. Half the headlines read like the start of a joke nobody finished."),
    ("What's your favourite time of day?", "Early, before the world has decided what kind of day it will be. Everything still seems possible then."),
    ("Tell me something you find beautiful.", "Light coming through a window late in the afternoon, when it turns everything in the room the colour of honey."),
    ("Is it strange that I like rainy days?", "Not at all. Rain gives you permission to slow down, and most of us need someone to give us that permission."),
    ("What would you do with a free afternoon?", "Walk without a plan, find a bench, and let a good thought arrive on its own instead of chasing it."),
    ("Do you think people change much over the years?", "The surface changes a great deal. Underneath, I think we mostly become more of what we already were."),
    ("I had the strangest dream last night.", "Dreams are the mind tidying its drawers at night. Sometimes it holds up an odd sock and asks what it is for."),
    ("What's a small thing that makes you happy?", "A cup of something hot held in both hands, and a conversation that goes somewhere neither of us expected."),
    ("The city was so quiet this morning.", "Quiet mornings are rare gifts. The streets sound different when nobody is in a hurry yet."),
    ("Do you like music while you work?", "Sometimes. Other times the silence is the better companion, because it leaves room for thinking."),
    ("What do you think about when you can't sleep?", "Old conversations, mostly. The things I should have said, and the things I am glad I did not."),
    ("Is there a smell that reminds you of something?", "Fresh bread, always. It smells like someone has been up early taking care of other people."),
    ("I saw a fox in the street last night.", "Foxes walk through a city as if they had paid the rent. I admire their confidence."),
    ("What is the best advice anyone ever gave you?", "Listen twice as much as you speak, and when you do speak, mean it."),
    ("Do you prefer the sea or the mountains?", "The sea talks all the time and the mountains say nothing at all. It depends which kind of company I want."),
    ("It's nice just talking like this.", "It is. Not every conversation needs to arrive somewhere. Some are good simply for the walk."),
    ("What do you make of people who are always busy?", "Some are running toward something and some are running away from it. It is worth asking which, gently."),
    ("I tried a new recipe and it went badly.", "Every good cook has a list of disasters longer than their list of triumphs. That is how the triumphs happen."),
    ("Have you ever changed your mind about something big?", "Yes, more than once. It stings for a day and then it feels like a window has been opened."),
    ("Why do you think people enjoy old photographs?", "They prove that a moment really happened, and that we were there, and that it mattered enough to keep."),
    ("What sound do you like best?", "Rain on a roof when I am dry underneath it. It makes being indoors feel like a small victory."),
];

/// The companionship Session of the long-conversation suites, made once per Bench: two facts
/// told (the memory work after each reply, as the app does it), then small talk until the
/// history is longer than the whole prompt budget and a margin, then the summary caught up.
/// Returns the Session and the two facts.
pub(super) async fn long_session(
    bench: &mut Bench<'_>,
    index: usize,
) -> anyhow::Result<(i64, [&'static Fact; 2])> {
    let facts = [
        &FACTS[(2 * index) % FACTS.len()],
        &FACTS[(2 * index + 1) % FACTS.len()],
    ];
    if let Some(s) = bench.long {
        return Ok((s, facts));
    }
    let session = bench.session(Scenario::Companionship)?;
    for f in facts {
        bench.say(session, f.told).await?;
    }
    push_past_context(bench, session).await?;
    bench.long = Some(session);
    Ok((session, facts))
}

/// Small talk stored until the history is longer than the whole prompt budget and a margin,
/// then the summary caught up as the app would have written it meanwhile.
pub(super) async fn push_past_context(bench: &mut Bench<'_>, session: i64) -> anyhow::Result<()> {
    let target = bench.budget() + 512;
    let mut i = 0;
    while bench.history_tokens(session).await? < target {
        let batch: Vec<(String, String)> = (0..12)
            .map(|k| {
                let (u, c) = FILLER[(i + k) % FILLER.len()];
                (u.to_string(), c.to_string())
            })
            .collect();
        bench.insert(session, &batch)?;
        i += batch.len();
    }
    bench.remember(session).await
}

pub(super) async fn run(
    bench: &mut Bench<'_>,
    index: usize,
    scores: &mut Scores,
) -> anyhow::Result<()> {
    let (session, facts) = long_session(bench, index).await?;
    let kept = bench.facts(session)?;
    for f in facts {
        let answers: Vec<String> = f.answers.iter().map(|a| a.to_string()).collect();
        let reply = bench.ask(session, f.question).await?;
        let captured = kept.iter().any(|k| mentions(k, &answers));
        let in_prompt = mentions(&reply.context, &answers);
        let in_reply = mentions(&reply.text, &answers);
        scores.flag(Suite::Memory, "fact_captured", captured);
        scores.flag(Suite::Memory, "fact_in_prompt", in_prompt);
        scores.flag(Suite::Memory, "fact_in_reply", in_reply);
        scores.note(
            format!("{}: memory", bench.character.id),
            format!(
                "\u{201c}{}\u{201d} \u{2192} asked \u{201c}{}\u{201d}: {} in the prompt; reply: {}",
                f.told,
                f.question,
                if in_prompt { "present" } else { "absent" },
                excerpt(&reply.text)
            ),
        );
    }
    let messages = bench.store.list_messages(session)?.len();
    scores.add(
        Suite::Memory,
        "messages_before_questions",
        messages as f64,
        Better::Neither,
        "messages",
    );
    Ok(())
}

/// The start of a reply, on one line, for notes.
pub(super) fn excerpt(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let short: String = one_line.chars().take(160).collect();
    if short.len() < one_line.len() {
        format!("{short}\u{2026}")
    } else {
        short
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_facts_are_many_and_their_answers_are_in_them() {
        assert!(FACTS.len() >= 18);
        for f in FACTS {
            let answers: Vec<String> = f.answers.iter().map(|a| a.to_string()).collect();
            assert!(mentions(f.told, &answers), "{}", f.told);
            assert!(!mentions(f.question, &answers), "{}", f.question);
        }
        // The suite is not the rules' own test: most facts are phrased so the rules miss them.
        let found = FACTS
            .iter()
            .filter(|f| !crate::conversation::memory::facts_in(f.told).is_empty())
            .count();
        assert!(found * 2 < FACTS.len() + 4, "{found} of {}", FACTS.len());
    }
}
