//! Number words: cardinals, ordinals, years and digit-by-digit readings.
//!
//! Cardinals are read up to 999 quadrillion (18 digits). Longer digit
//! strings (and integers written with leading zeros, like `007`) are read
//! digit by digit: nobody says "one nonillion" to a listener, and digit
//! reading keeps the output bounded and linear in the input.

const ONES: [&str; 20] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
];
const TENS: [&str; 10] = [
    "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
];
const SCALES: [&str; 6] = [
    "",
    "thousand",
    "million",
    "billion",
    "trillion",
    "quadrillion",
];

/// Longest digit string read as a cardinal (999 quadrillion); longer ones
/// are read digit by digit.
pub const MAX_CARDINAL_DIGITS: usize = 18;

/// 0–99 as words, hyphenating compounds ("forty-two").
pub fn under_hundred(n: u64) -> String {
    let n = n % 100;
    if n < 20 {
        ONES[n as usize].to_string()
    } else if n.is_multiple_of(10) {
        TENS[(n / 10) as usize].to_string()
    } else {
        format!("{}-{}", TENS[(n / 10) as usize], ONES[(n % 10) as usize])
    }
}

/// A cardinal in American style ("one hundred twenty-three", no "and").
pub fn cardinal(n: u64) -> String {
    if n == 0 {
        return "zero".to_string();
    }
    let mut groups = Vec::new();
    let mut m = n;
    while m > 0 {
        groups.push(m % 1000);
        m /= 1000;
    }
    if groups.len() > SCALES.len() {
        return spell_digits(&n.to_string());
    }
    let mut parts: Vec<String> = Vec::new();
    for (idx, &g) in groups.iter().enumerate().rev() {
        if g == 0 {
            continue;
        }
        if g >= 100 {
            parts.push(ONES[(g / 100) as usize].to_string());
            parts.push("hundred".to_string());
        }
        if g % 100 > 0 {
            parts.push(under_hundred(g % 100));
        }
        if idx > 0 {
            parts.push(SCALES[idx].to_string());
        }
    }
    parts.join(" ")
}

/// Every ASCII digit of `s` as a word, separated by spaces ("one two three");
/// other characters are skipped.
pub fn spell_digits(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 5);
    for b in s.bytes().filter(u8::is_ascii_digit) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(ONES[(b - b'0') as usize]);
    }
    out
}

/// An integer written as ASCII digits: a cardinal when it fits, digit by
/// digit when it has leading zeros or more than [`MAX_CARDINAL_DIGITS`].
pub fn integer(digits: &str) -> String {
    if digits.is_empty() {
        return String::new();
    }
    if digits.len() > MAX_CARDINAL_DIGITS || (digits.len() > 1 && digits.starts_with('0')) {
        return spell_digits(digits);
    }
    match digits.parse::<u64>() {
        Ok(n) => cardinal(n),
        Err(_) => spell_digits(digits),
    }
}

/// Turns the last word of a reading into its ordinal ("twenty-one" →
/// "twenty-first", "one hundred" → "one hundredth").
pub fn ordinal(words: &str) -> String {
    let cut = words.rfind([' ', '-']).map_or(0, |p| p + 1);
    let (head, last) = words.split_at(cut);
    let last = match last {
        "one" => "first".to_string(),
        "two" => "second".to_string(),
        "three" => "third".to_string(),
        "five" => "fifth".to_string(),
        "eight" => "eighth".to_string(),
        "nine" => "ninth".to_string(),
        "twelve" => "twelfth".to_string(),
        w if w.ends_with('y') => format!("{}ieth", &w[..w.len() - 1]),
        w => format!("{w}th"),
    };
    format!("{head}{last}")
}

/// Plural of the last word of a reading, for decades ("nineteen ninety" →
/// "nineteen nineties").
pub fn plural(words: &str) -> String {
    if let Some(stem) = words.strip_suffix('y') {
        format!("{stem}ies")
    } else if words.ends_with('x') {
        format!("{words}es")
    } else {
        format!("{words}s")
    }
}

/// A year as it is spoken: "nineteen ninety-nine", "nineteen oh five",
/// "nineteen hundred", "two thousand five", "twenty twenty-six".
pub fn year(n: u64) -> String {
    if !(1000..=9999).contains(&n) || n.is_multiple_of(1000) || (2000..=2009).contains(&n) {
        return cardinal(n);
    }
    let (hi, lo) = (n / 100, n % 100);
    if lo == 0 {
        format!("{} hundred", under_hundred(hi))
    } else if lo < 10 {
        format!("{} oh {}", under_hundred(hi), ONES[lo as usize])
    } else {
        format!("{} {}", under_hundred(hi), under_hundred(lo))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cardinals_ordinals_years() {
        assert_eq!(cardinal(0), "zero");
        assert_eq!(cardinal(115), "one hundred fifteen");
        assert_eq!(cardinal(1_000_001), "one million one");
        assert_eq!(
            cardinal(999_999_999_999_999_999),
            "nine hundred ninety-nine quadrillion nine hundred ninety-nine trillion \
             nine hundred ninety-nine billion nine hundred ninety-nine million \
             nine hundred ninety-nine thousand nine hundred ninety-nine"
        );
        assert_eq!(cardinal(u64::MAX).split(' ').count(), 20);
        assert_eq!(ordinal("twenty-one"), "twenty-first");
        assert_eq!(ordinal("twenty"), "twentieth");
        assert_eq!(ordinal("one hundred"), "one hundredth");
        assert_eq!(ordinal("twelve"), "twelfth");
        assert_eq!(year(1905), "nineteen oh five");
        assert_eq!(year(1900), "nineteen hundred");
        assert_eq!(year(2000), "two thousand");
        assert_eq!(year(2010), "twenty ten");
        assert_eq!(integer("007"), "zero zero seven");
        assert_eq!(
            integer("1234567890123456789"),
            spell_digits("1234567890123456789")
        );
        assert_eq!(plural("nineteen ninety"), "nineteen nineties");
        assert_eq!(plural("twenty-six"), "twenty-sixes");
    }
}
