//! Reading a string of ASCII digits aloud: as a cardinal (一百二十三), digit
//! by digit (一二三 / 幺二三) or as a decimal (三点一四).
//!
//! Everything works on digit *strings*, never on machine integers, so a
//! number of any length is safe: nothing can overflow, and numbers longer
//! than [`MAX_CARDINAL_DIGITS`] are read digit by digit.

use crate::readings::{Readings, MAX_CARDINAL_DIGITS};

/// How a cardinal is being read; passed down the section readers.
#[derive(Clone, Copy)]
struct Position {
    /// This section starts the whole number: only there is `10` read 十
    /// (not 一十) and a leading `2` read 两.
    leading: bool,
    /// A section word (万 or 亿) follows this section, so a lone leading
    /// `2` is 两 (两万, 两亿).
    before_section_word: bool,
}

/// Reads `digits` (ASCII digits only, possibly with leading zeros) as a
/// cardinal number: `1005` → 一千零五, `10` → 十, `20000` → 两万 (with
/// `liang`). Empty or all-zero input reads 零.
pub fn cardinal(w: &Readings, digits: &str, liang: bool) -> String {
    let significant = digits.trim_start_matches('0');
    if significant.is_empty() {
        return w.digits[0].to_string();
    }
    if significant.len() > MAX_CARDINAL_DIGITS {
        return digit_by_digit(w, significant, false);
    }
    let at_start = Position {
        leading: true,
        before_section_word: false,
    };
    up_to_yi(w, significant, at_start, liang)
}

/// Reads each digit on its own: `2026` → 二零二六; with `yao`, 1 is 幺.
pub fn digit_by_digit(w: &Readings, digits: &str, yao: bool) -> String {
    digits
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| match b - b'0' {
            1 if yao => w.yao,
            d => w.digits[usize::from(d)],
        })
        .collect()
}

/// Reads a decimal: the integer part as a cardinal, the fraction digit by
/// digit (三点一四; a fraction is never read 幺).
pub fn decimal(w: &Readings, int: &str, frac: &str, liang: bool) -> String {
    let mut out = cardinal(w, int, liang);
    out.push_str(w.point);
    out.push_str(&digit_by_digit(w, frac, false));
    out
}

/// 1 to 16 significant digits: splits off everything above 10⁸ and reads it
/// as a number of 亿 (so 10¹² comes out as 一万亿).
fn up_to_yi(w: &Readings, s: &str, pos: Position, liang: bool) -> String {
    if s.len() <= 8 {
        return up_to_wan(w, s, pos, liang);
    }
    let (high, low) = s.split_at(s.len() - 8);
    let high_pos = Position {
        before_section_word: true,
        ..pos
    };
    let mut out = up_to_wan(w, high, high_pos, liang);
    out.push_str(w.yi);
    out.push_str(&lower_part(w, low, pos, liang, up_to_wan));
    out
}

/// 1 to 8 significant digits: splits off everything above 10⁴ and reads it
/// as a number of 万.
fn up_to_wan(w: &Readings, s: &str, pos: Position, liang: bool) -> String {
    if s.len() <= 4 {
        return section(w, s, pos, liang);
    }
    let (high, low) = s.split_at(s.len() - 4);
    let high_pos = Position {
        before_section_word: true,
        ..pos
    };
    let mut out = section(w, high, high_pos, liang);
    out.push_str(w.wan);
    out.push_str(&lower_part(w, low, pos, liang, section));
    out
}

/// The part below a section word (the `0005` of `10005`): nothing when it
/// is all zeros, and one 零 first when it has leading zeros (一万零五).
fn lower_part(
    w: &Readings,
    low: &str,
    pos: Position,
    liang: bool,
    read: fn(&Readings, &str, Position, bool) -> String,
) -> String {
    let significant = low.trim_start_matches('0');
    if significant.is_empty() {
        return String::new();
    }
    let mut out = String::new();
    if significant.len() < low.len() {
        out.push_str(w.digits[0]);
    }
    let inner = Position {
        leading: false,
        ..pos
    };
    out.push_str(&read(w, significant, inner, liang));
    out
}

/// One section of 1 to 4 digits without leading zeros, e.g. `1005` →
/// 一千零五. A run of zeros between digits is one 零; trailing zeros are
/// silent.
fn section(w: &Readings, s: &str, pos: Position, liang: bool) -> String {
    let mut out = String::new();
    let mut zeros_pending = false;
    for (i, b) in s.bytes().enumerate() {
        let digit = usize::from(b.wrapping_sub(b'0')).min(9);
        // 0 = ones, 1 = tens, 2 = hundreds, 3 = thousands.
        let place = (s.len() - 1 - i).min(3);
        if digit == 0 {
            zeros_pending = true;
            continue;
        }
        if zeros_pending {
            out.push_str(w.digits[0]);
            zeros_pending = false;
        }
        let first = i == 0 && pos.leading;
        let word = if first && digit == 1 && place == 1 {
            // 十五, not 一十五 — but only at the very start (一百一十).
            ""
        } else if first && digit == 2 && liang && (place >= 2 || pos.before_section_word) {
            // 两百, 两千, 两万, 两亿 — but 二十 and a bare 二.
            w.liang
        } else {
            w.digits[digit]
        };
        out.push_str(word);
        out.push_str(w.places[place]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readings::MANDARIN;

    fn c(s: &str) -> String {
        cardinal(&MANDARIN, s, true)
    }

    #[test]
    fn sections_and_zeros() {
        assert_eq!(c("0"), "零");
        assert_eq!(c("7"), "七");
        assert_eq!(c("10"), "十");
        assert_eq!(c("15"), "十五");
        assert_eq!(c("110"), "一百一十");
        assert_eq!(c("123"), "一百二十三");
        assert_eq!(c("1005"), "一千零五");
        assert_eq!(c("1050"), "一千零五十");
        assert_eq!(c("10005"), "一万零五");
        assert_eq!(c("100000"), "十万");
        assert_eq!(c("100010"), "十万零一十");
        assert_eq!(c("100000001"), "一亿零一");
        assert_eq!(c("100010000"), "一亿零一万");
        assert_eq!(c("110000000"), "一亿一千万");
        assert_eq!(c("1000000000000"), "一万亿");
        assert_eq!(c("1000100000000"), "一万零一亿");
        assert_eq!(c("007"), "七");
    }

    #[test]
    fn liang_only_leads() {
        assert_eq!(c("2"), "二");
        assert_eq!(c("20"), "二十");
        assert_eq!(c("200"), "两百");
        assert_eq!(c("2000"), "两千");
        assert_eq!(c("20000"), "两万");
        assert_eq!(c("200000000"), "两亿");
        assert_eq!(c("222"), "两百二十二");
        assert_eq!(c("12000"), "一万二千");
        assert_eq!(cardinal(&MANDARIN, "20000", false), "二万");
    }

    #[test]
    fn longest_cardinal_and_beyond() {
        assert_eq!(
            c("9999999999999999"),
            "九千九百九十九万九千九百九十九亿九千九百九十九万九千九百九十九"
        );
        assert_eq!(c("12345678901234567"), "一二三四五六七八九零一二三四五六七");
    }
}
