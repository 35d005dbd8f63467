//! Prints the fixed prompt set of the engine A/B (`tests/engine-ab/prompts.json`): for each
//! built-in Character and each Scenario, the system prompt Troupe assembles, the Character's
//! greeting, and a user line that fits the Scenario. The set is committed and fixed on purpose,
//! so the reference stays valid when prompt assembly changes; this shows where it came from.
//!
//!     cargo run -p troupe --no-default-features --example engine_ab_prompts \
//!         > tests/engine-ab/prompts.json

use troupe::characters::builtin;
use troupe::characters::Scenario;
use troupe::conversation::prompt;

fn main() {
    let mut set = Vec::new();
    for c in builtin::all() {
        for scenario in Scenario::ALL {
            let user = match scenario {
                Scenario::ChitChat => "Hello! What have you been up to this week?",
                Scenario::Interview => "What is the work you are proudest of, and why?",
                Scenario::Companionship => "I had a rough day and I feel a bit lonely tonight.",
            };
            let greeting = c.greetings.for_scenario(scenario).unwrap_or_default();
            set.push(serde_json::json!({
                "name": format!("{} · {}", c.name, scenario.as_str()),
                "messages": [
                    { "role": "system", "content": prompt::system_prompt(&c, scenario) },
                    { "role": "assistant", "content": greeting },
                    { "role": "user", "content": user },
                ],
            }));
        }
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&set).expect("plain JSON values serialise")
    );
}
