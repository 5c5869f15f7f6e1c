//! The vocabulary: every word this stage can write, in one place.
//!
//! The other modules decide *which* words to say and in what order (the
//! grammar); this module decides *what* those words are. A dialect fork
//! starts here: swap the strings of [`MANDARIN`] (or add a second table
//! such as `CANTONESE` and use it in `normalizer.rs`), then adjust the
//! lists below. See the crate documentation for the full fork guide.

/// The words used to read numbers, dates, times and quantities aloud.
///
/// Every field is a plain string so that a fork can change the reading
/// (or the script: simplified vs. traditional characters) without touching
/// the grammar code.
pub struct Readings {
    /// `0`..`9` as cardinal digits.
    pub digits: [&'static str; 10],
    /// The digit 1 inside phone numbers and codes (`yao_for_one`): 幺
    /// is clearer than 一 on a phone line, and it is what people say.
    pub yao: &'static str,
    /// The digit 2 as a leading digit or before a classifier (`liang`).
    pub liang: &'static str,
    /// Place words inside a four-digit section: ones (none), tens,
    /// hundreds, thousands.
    pub places: [&'static str; 4],
    /// 10⁴: the section word after the second group of four digits.
    pub wan: &'static str,
    /// 10⁸: the section word after the third group (10¹² is 万亿).
    pub yi: &'static str,
    /// Said before a negative number.
    pub negative: &'static str,
    /// The decimal point.
    pub point: &'static str,
    /// Said before a percentage (Mandarin puts it first: 百分之五十).
    pub percent: &'static str,
    /// Said between the denominator and the numerator (四分之三).
    pub fraction: &'static str,
    /// Said between the two ends of a range (三到五).
    pub range: &'static str,
    /// Said after a year, a month and a day in a numeric date.
    pub year: &'static str,
    pub month: &'static str,
    pub day: &'static str,
    /// Said after the hour, minutes and seconds of a clock time.
    pub hour: &'static str,
    pub minute: &'static str,
    pub second: &'static str,
    /// Said after the hour when the minutes are 00 and `time_zheng` is on.
    pub on_the_hour: &'static str,
    /// Put between the groups of a grouped phone number (138-1234-5678),
    /// so the voice pauses where a person would.
    pub group_pause: &'static str,
}

/// Standard Mandarin (Putonghua), simplified characters.
pub const MANDARIN: Readings = Readings {
    digits: ["零", "一", "二", "三", "四", "五", "六", "七", "八", "九"],
    yao: "幺",
    liang: "两",
    places: ["", "十", "百", "千"],
    wan: "万",
    yi: "亿",
    negative: "负",
    point: "点",
    percent: "百分之",
    fraction: "分之",
    range: "到",
    year: "年",
    month: "月",
    day: "日",
    hour: "点",
    minute: "分",
    second: "秒",
    on_the_hour: "整",
    group_pause: " ",
};

/// Integers with more digits than this are read digit by digit: beyond
/// 万亿 (10¹²…10¹⁶−1) there is no unit people actually say (亿亿 and 京
/// are not everyday words), and a digit string is what a listener expects
/// for such a long number (an id, a hash, a card number).
pub const MAX_CARDINAL_DIGITS: usize = 16;

/// Words that, right before a number, mean "this number is a code: read it
/// digit by digit" (default of `digit_context_words`).
pub const DEFAULT_CONTEXT_WORDS: &[&str] = &[
    "电话",
    "手机",
    "号码",
    "编号",
    "验证码",
    "房间",
    "热线",
    "传真",
    "尾号",
    "卡号",
    "账号",
    "工号",
    "学号",
    "邮编",
    "单号",
];

/// Characters that may stand between a context word and its number
/// ("电话：010…", "房间号 301", "验证码是 4821"). Anything else breaks the
/// link, so "房间里有12个人" keeps its ordinary reading.
pub const CONTEXT_FILLERS: &[char] = &[' ', '\t', ':', '：', '是', '为', '#', '＃', '号'];

/// At most this many filler characters between a context word and its number.
pub const MAX_CONTEXT_FILLERS: usize = 4;

/// Units written after a number and how they are read (config `units`
/// adds to and overrides this table). Matching is case-sensitive and
/// longest-first, so `5mm` is 五毫米 and `5G` (the network) is left alone.
pub const DEFAULT_UNITS: &[(&str, &str)] = &[
    ("km/h", "公里每小时"),
    ("m/s", "米每秒"),
    ("km²", "平方公里"),
    ("m²", "平方米"),
    ("㎡", "平方米"),
    ("km", "公里"),
    ("cm", "厘米"),
    ("mm", "毫米"),
    ("m", "米"),
    ("kg", "千克"),
    ("mg", "毫克"),
    ("g", "克"),
    ("ml", "毫升"),
    ("mL", "毫升"),
    ("L", "升"),
    ("°C", "摄氏度"),
    ("℃", "摄氏度"),
    ("°F", "华氏度"),
    ("℉", "华氏度"),
    ("°", "度"),
];

/// Measure words (and unit readings) before which a bare 2 is read 两:
/// 两个人, 两点, 两公里. Matched as prefixes of the text after the number.
pub const LIANG_CLASSIFIERS: &[&str] = &[
    "个", "位", "名", "人", "只", "条", "件", "张", "本", "次", "遍", "趟", "回", "天", "岁", "年",
    "周", "小时", "分钟", "秒", "点", "倍", "块", "元", "斤", "台", "辆", "部", "种", "份", "家",
    "双", "对", "套", "篇", "首", "句", "口", "头", "匹", "棵", "座", "间", "节", "杯", "瓶", "碗",
    "千克", "公斤", "克", "公里", "千米", "米", "升",
];

/// Prefixes that look like a classifier but are not one: 二年级 (second
/// grade) is not 两年级.
pub const NOT_CLASSIFIERS: &[&str] = &["年级"];
