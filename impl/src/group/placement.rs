//! Which `__consumer_offsets` partition holds a group: Kafka's placement, bit for bit.

/// Java's `String.hashCode` over `s`: `s[0]*31^(n-1) + ... + s[n-1]` in wrapping 32-bit
/// arithmetic, where `s[i]` are the UTF-16 code units (so a character outside the BMP
/// contributes its two surrogates). Kafka places groups with this hash, so Osprey must
/// compute it bit for bit to agree with Java clients and tools about coordinators.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// The `__consumer_offsets` partition that stores `group_id`:
/// `Utils.abs(groupId.hashCode) % num_partitions`, where Kafka's `Utils.abs` is
/// `x & 0x7fffffff` (so `i32::MIN` maps to 0 rather than staying negative as
/// `Math.abs` would). `num_partitions` is `offsets.topic.num.partitions` (default 50);
/// a non-positive count is treated as 1.
pub fn partition_for(group_id: &str, num_partitions: i32) -> i32 {
    (java_string_hash(group_id) & 0x7fff_ffff) % num_partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_hash_matches_hand_computed_values() {
        // h("") = 0; h("a") = 97; h("ab") = 97*31 + 98; h("abc") = 3105*31 + 99.
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("a"), 97);
        assert_eq!(java_string_hash("ab"), 3105);
        assert_eq!(java_string_hash("abc"), 96_354);
        // U+1F600 is the surrogate pair 0xD83D 0xDE00: 55357*31 + 56832.
        assert_eq!(java_string_hash("\u{1F600}"), 1_772_899);
        // "group1" = g r o u p 1 = 103 114 111 117 112 49:
        // 103*31+114 = 3307; *31+111 = 102628; *31+117 = 3181585; *31+112 = 98629247;
        // *31+49 = 3057506706, which as i32 is 3057506706 - 2^32 = -1237460590.
        assert_eq!(java_string_hash("group1"), -1_237_460_590);
        // The classic string whose hashCode is Integer.MIN_VALUE.
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
    }

    #[test]
    fn partition_uses_kafka_abs_semantics() {
        assert_eq!(partition_for("", 50), 0);
        assert_eq!(partition_for("a", 50), 97 % 50);
        assert_eq!(partition_for("abc", 50), 96_354 % 50);
        // -1237460590 & 0x7fffffff = 910023058; % 50 = 8.
        assert_eq!(partition_for("group1", 50), 8);
        // Math.abs(MIN_VALUE) would stay negative; Utils.abs gives 0.
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        assert_eq!(partition_for("anything", 1), 0);
        assert_eq!(partition_for("anything", 0), 0);
    }
}
