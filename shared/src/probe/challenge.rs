//! The answer challenge: a fresh question whose one-word answer is written in the
//! prompt. A relay that answers without a model reading the prompt (canned, cached or
//! broken replies) fails it. It proves that some language model read the prompt, not
//! which one.
//!
//! Arithmetic is avoided on purpose: a fake relay can compute it.

use rand::Rng;
use rand::seq::{IndexedRandom, SliceRandom};

const FRUITS: &[&str] = &[
    "apple", "banana", "cherry", "mango", "peach", "plum", "lemon", "grape", "melon", "pear",
    "apricot", "papaya", "kiwi", "lime", "orange",
];
const THINGS: &[&str] = &[
    "chair", "river", "pencil", "cloud", "hammer", "window", "carpet", "bridge", "candle",
    "ladder", "mirror", "button", "pillow", "bucket", "wallet", "helmet", "anchor", "tunnel",
];
const ANIMALS: &[&str] = &[
    "fox", "owl", "horse", "rabbit", "whale", "tiger", "parrot", "turtle", "wolf", "camel",
    "otter", "goat",
];
const COLOURS: &[&str] = &[
    "red", "green", "blue", "yellow", "purple", "orange", "black", "white", "brown", "pink", "grey",
];

/// A question and the word its answer must contain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub prompt: String,
    pub expected: String,
}

impl Challenge {
    /// A new random challenge.
    pub fn generate() -> Challenge {
        let mut rng = rand::rng();
        if rng.random_bool(0.5) {
            let fruit = *FRUITS.choose(&mut rng).expect("non-empty");
            let mut words: Vec<&str> = THINGS.choose_multiple(&mut rng, 5).copied().collect();
            words.push(fruit);
            words.shuffle(&mut rng);
            Challenge {
                prompt: format!(
                    "Words: {}. Which one of these words is a fruit? Reply with that one word only.",
                    words.join(", ")
                ),
                expected: fruit.to_string(),
            }
        } else {
            let animals: Vec<&str> = ANIMALS.choose_multiple(&mut rng, 2).copied().collect();
            let colours: Vec<&str> = COLOURS.choose_multiple(&mut rng, 2).copied().collect();
            let asked = rng.random_range(0..2);
            Challenge {
                prompt: format!(
                    "In this note the {} is {} and the {} is {}. What colour is the {}? Reply with one word only.",
                    animals[0], colours[0], animals[1], colours[1], animals[asked]
                ),
                expected: colours[asked].to_string(),
            }
        }
    }

    /// Whether a reply passes: short, and containing the expected word as a word.
    pub fn passes(&self, reply: &str) -> bool {
        let words = normalised_words(reply);
        !words.is_empty() && words.len() <= MAX_REPLY_WORDS && words.contains(&self.expected)
    }
}

/// A reply longer than this is not the one-word answer asked for.
pub const MAX_REPLY_WORDS: usize = 40;

fn normalised_words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// What a model that reads the prompt answers to a challenge: the fruit among the
/// words, or the colour the note gives the animal asked about. The fake upstream of
/// the tests uses it to stand for a working model.
pub fn solve(prompt: &str) -> Option<String> {
    let lower = prompt.to_lowercase();
    if let Some(rest) = lower.strip_prefix("words: ") {
        let list = rest.split('.').next()?;
        return list
            .split(',')
            .map(str::trim)
            .find(|w| FRUITS.contains(w))
            .map(str::to_string);
    }
    let note = lower.strip_prefix("in this note ")?;
    let (facts, question) = note.split_once(". what colour is the ")?;
    let animal = question.split('?').next()?.trim();
    facts.split(" and ").find_map(|fact| {
        let fact = fact.trim().strip_prefix("the ")?;
        let (who, colour) = fact.split_once(" is ")?;
        (who == animal).then(|| colour.trim().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reading_model_passes_every_generated_challenge() {
        for _ in 0..500 {
            let c = Challenge::generate();
            let answer = solve(&c.prompt).expect("solvable");
            assert_eq!(answer, c.expected, "{}", c.prompt);
            assert!(c.passes(&answer));
            assert!(c.passes(&format!("**{}**.", answer.to_uppercase())));
            assert!(c.passes(&format!("The answer is {answer}.")));
        }
    }

    #[test]
    fn challenges_differ_between_probes() {
        let prompts: std::collections::HashSet<String> =
            (0..50).map(|_| Challenge::generate().prompt).collect();
        assert!(prompts.len() > 40);
    }

    #[test]
    fn wrong_empty_and_rambling_replies_fail() {
        let c = Challenge {
            prompt: String::new(),
            expected: "mango".into(),
        };
        assert!(!c.passes("I am a helpful assistant."));
        assert!(!c.passes(""));
        assert!(!c.passes("mangos"));
        let ramble = format!("mango {}", "word ".repeat(60));
        assert!(!c.passes(&ramble));
    }
}
