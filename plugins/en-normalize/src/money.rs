//! Currency amounts: "$3.50" → "three dollars and fifty cents".

use crate::number::parse_num;
use crate::scan::{alnum_at, peek, rest};
use crate::words::integer;

struct Currency {
    one: &'static str,
    many: &'static str,
    /// Names of the hundredth (cents, pence); `None` for the yen.
    sub: Option<(&'static str, &'static str)>,
}

fn currency(symbol: char) -> Option<Currency> {
    let c = |one, many, sub| Some(Currency { one, many, sub });
    match symbol {
        '$' => c("dollar", "dollars", Some(("cent", "cents"))),
        '€' => c("euro", "euros", Some(("cent", "cents"))),
        '£' => c("pound", "pounds", Some(("penny", "pence"))),
        '¥' => c("yen", "yen", None),
        _ => None,
    }
}

/// Scale words after an amount: spelled ("$1.2 million") after one space,
/// or the usual glued short forms ("$5k", "$2.5M", "$3bn").
fn scale_at(t: &str, j: usize) -> Option<(&'static str, usize)> {
    const SPELLED: [&str; 5] = ["thousand", "million", "billion", "trillion", "quadrillion"];
    const SHORT: [(&str, &str); 5] = [
        ("bn", "billion"),
        ("k", "thousand"),
        ("K", "thousand"),
        ("M", "million"),
        ("B", "billion"),
    ];
    if peek(t, j) == Some(' ') {
        for w in SPELLED {
            if rest(t, j + 1).starts_with(w) && !alnum_at(t, j + 1 + w.len()) {
                return Some((w, j + 1 + w.len()));
            }
        }
    }
    for (s, w) in SHORT {
        if rest(t, j).starts_with(s) && !alnum_at(t, j + s.len()) {
            return Some((w, j + s.len()));
        }
    }
    None
}

/// Reads the amount at `i`, which holds a currency symbol. Two decimals or
/// fewer are read as cents/pence ("$3.5" is three dollars and fifty
/// cents); more decimals, or a scale word, are read as a decimal number.
pub fn money_at(t: &str, i: usize, symbol: char) -> Option<(usize, String)> {
    let cur = currency(symbol)?;
    let num = parse_num(t, i + symbol.len_utf8())?;
    if !num.more.is_empty() {
        return None;
    }
    if let Some((scale, end)) = scale_at(t, num.end) {
        return Some((end, format!("{} {scale} {}", num.words(), cur.many)));
    }
    let main_name = if num.is_one() { cur.one } else { cur.many };
    let Some(frac) = num.frac else {
        return Some((num.end, format!("{} {main_name}", integer(&num.int))));
    };
    let (Some((sub_one, sub_many)), true) = (cur.sub, frac.len() <= 2) else {
        return Some((num.end, format!("{} {}", num.words(), cur.many)));
    };
    let cents: u64 = format!("{frac:0<2}").parse().ok()?;
    let main_is_zero = num.int.bytes().all(|b| b == b'0');
    let main_name = if num.int == "1" { cur.one } else { cur.many };
    let mut out = String::new();
    if !main_is_zero || cents == 0 {
        out = format!("{} {main_name}", integer(&num.int));
    }
    if cents > 0 {
        if !out.is_empty() {
            out.push_str(" and ");
        }
        let sub = if cents == 1 { sub_one } else { sub_many };
        out.push_str(&format!("{} {sub}", integer(&cents.to_string())));
    }
    Some((num.end, out))
}
