//! `Scenario`: the three kinds of conversation of the CharacterGLM evaluation (chit-chat,
//! interview, companionship), the vocabulary a Character's greetings and a Session are described
//! in. It lives with the Characters so that `characters` and `conversation` both use it without
//! importing each other.

/// The three conversation scenarios of the CharacterGLM evaluation, chosen per Session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scenario {
    /// Casual talk; the character moves topics along.
    ChitChat,
    /// The user interviews the character about its life, work and views.
    Interview,
    /// The character keeps the user company and attends to their feelings.
    Companionship,
}

impl Scenario {
    pub const ALL: [Scenario; 3] = [
        Scenario::ChitChat,
        Scenario::Interview,
        Scenario::Companionship,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scenario::ChitChat => "chit_chat",
            Scenario::Interview => "interview",
            Scenario::Companionship => "companionship",
        }
    }

    pub fn parse(s: &str) -> Option<Scenario> {
        Scenario::ALL
            .into_iter()
            .find(|x| x.as_str() == s || x.label().eq_ignore_ascii_case(s))
    }

    /// The word a person reads.
    pub fn label(self) -> &'static str {
        match self {
            Scenario::ChitChat => "Chit-chat",
            Scenario::Interview => "Interview",
            Scenario::Companionship => "Companionship",
        }
    }

    /// How the system prompt frames this Scenario (the paper's proactivity in chit-chat,
    /// answering in depth in interviews, attention to feelings in companionship).
    pub fn framing(self, name: &str) -> String {
        match self {
            Scenario::ChitChat => format!(
                "You are having a relaxed, friendly chat with the user. Keep it light and \
                 lively: share small stories and opinions as {name} would, ask the user about \
                 themselves, and move the conversation to new topics when it slows down."
            ),
            Scenario::Interview => format!(
                "The user is interviewing you. Answer their questions in depth and in your own \
                 voice, drawing on {name}'s experiences, achievements and views, with concrete \
                 details. Do not interview them back."
            ),
            Scenario::Companionship => format!(
                "You are keeping the user company as a caring friend. Notice how they feel, \
                 respond with warmth and patience, remember what they tell you about their life, \
                 and gently encourage them, as {name} would."
            ),
        }
    }
}
