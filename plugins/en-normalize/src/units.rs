//! Units read after a number ("5 kg" → "five kilograms").

use crate::scan::{alnum_at, peek, rest};

/// A unit symbol and its singular and plural names.
pub struct Unit {
    pub symbol: &'static str,
    pub one: &'static str,
    pub many: &'static str,
}

const fn u(symbol: &'static str, one: &'static str, many: &'static str) -> Unit {
    Unit { symbol, one, many }
}

/// Longest symbols first, so "km/h" wins over "km" and "mph" over "m".
/// Symbols are case-sensitive ("m" is a meter, "M" is not a unit here).
const UNITS: &[Unit] = &[
    u("km/h", "kilometer per hour", "kilometers per hour"),
    u("° C", "degree Celsius", "degrees Celsius"),
    u("° F", "degree Fahrenheit", "degrees Fahrenheit"),
    u("kHz", "kilohertz", "kilohertz"),
    u("MHz", "megahertz", "megahertz"),
    u("GHz", "gigahertz", "gigahertz"),
    u("mph", "mile per hour", "miles per hour"),
    u("kph", "kilometer per hour", "kilometers per hour"),
    u("lbs", "pound", "pounds"),
    u("°C", "degree Celsius", "degrees Celsius"),
    u("°F", "degree Fahrenheit", "degrees Fahrenheit"),
    u("ºC", "degree Celsius", "degrees Celsius"),
    u("ºF", "degree Fahrenheit", "degrees Fahrenheit"),
    u("km", "kilometer", "kilometers"),
    u("cm", "centimeter", "centimeters"),
    u("mm", "millimeter", "millimeters"),
    u("kg", "kilogram", "kilograms"),
    u("mg", "milligram", "milligrams"),
    u("lb", "pound", "pounds"),
    u("oz", "ounce", "ounces"),
    u("mi", "mile", "miles"),
    u("ft", "foot", "feet"),
    u("in", "inch", "inches"),
    u("ml", "milliliter", "milliliters"),
    u("mL", "milliliter", "milliliters"),
    u("GB", "gigabyte", "gigabytes"),
    u("MB", "megabyte", "megabytes"),
    u("kB", "kilobyte", "kilobytes"),
    u("KB", "kilobyte", "kilobytes"),
    u("TB", "terabyte", "terabytes"),
    u("Hz", "hertz", "hertz"),
    u("m", "meter", "meters"),
    u("g", "gram", "grams"),
    u("L", "liter", "liters"),
    u("°", "degree", "degrees"),
    u("º", "degree", "degrees"),
];

/// The unit right after a number ending at `j`, glued ("5kg") or after one
/// space ("5 kg"); returns the unit and the position past it. A symbol
/// glued to further letters ("5 min") is not a unit. "in" after a space
/// counts as inches only when no word or number follows ("12 in." but not
/// "3 in a row" or "1 in 4"), because "in" is far more often the
/// preposition.
pub fn unit_at(t: &str, j: usize) -> Option<(&'static Unit, usize)> {
    let spaced = peek(t, j) == Some(' ');
    let k = if spaced { j + 1 } else { j };
    let r = rest(t, k);
    for unit in UNITS {
        if !r.starts_with(unit.symbol) {
            continue;
        }
        let end = k + unit.symbol.len();
        let last_is_alnum = unit
            .symbol
            .chars()
            .next_back()
            .is_some_and(char::is_alphanumeric);
        if last_is_alnum && alnum_at(t, end) {
            continue;
        }
        if unit.symbol == "in" && spaced {
            let after = rest(t, end).trim_start();
            if after.chars().next().is_some_and(char::is_alphanumeric) {
                continue;
            }
        }
        return Some((unit, end));
    }
    None
}
