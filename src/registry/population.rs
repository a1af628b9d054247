//! Facts about Vietnam's people that the synthetic registry draws from: provinces with their
//! populations, family names with their frequencies, middle and given names.
//!
//! Frequencies are approximate (the 2019 census for provinces; published surname surveys for
//! family names: Nguyễn about 38%, Trần 11%, Lê 9.5%, ...). They make test data look like a real
//! export; nothing checks coverage against them.

/// Province code of birth registration and of card issue (the 2-digit form is the 3-digit one
/// without its leading zero), name, and population in thousands.
pub const PROVINCES: [(u16, &str, u32); 63] = [
    (1, "Hà Nội", 8054),
    (2, "Hà Giang", 854),
    (4, "Cao Bằng", 530),
    (6, "Bắc Kạn", 314),
    (8, "Tuyên Quang", 785),
    (10, "Lào Cai", 731),
    (11, "Điện Biên", 599),
    (12, "Lai Châu", 460),
    (14, "Sơn La", 1248),
    (15, "Yên Bái", 822),
    (17, "Hòa Bình", 854),
    (19, "Thái Nguyên", 1287),
    (20, "Lạng Sơn", 782),
    (22, "Quảng Ninh", 1320),
    (24, "Bắc Giang", 1804),
    (25, "Phú Thọ", 1464),
    (26, "Vĩnh Phúc", 1152),
    (27, "Bắc Ninh", 1369),
    (30, "Hải Dương", 1893),
    (31, "Hải Phòng", 2029),
    (33, "Hưng Yên", 1253),
    (34, "Thái Bình", 1861),
    (35, "Hà Nam", 852),
    (36, "Nam Định", 1781),
    (37, "Ninh Bình", 983),
    (38, "Thanh Hóa", 3641),
    (40, "Nghệ An", 3328),
    (42, "Hà Tĩnh", 1289),
    (44, "Quảng Bình", 896),
    (45, "Quảng Trị", 633),
    (46, "Thừa Thiên Huế", 1129),
    (48, "Đà Nẵng", 1135),
    (49, "Quảng Nam", 1496),
    (51, "Quảng Ngãi", 1232),
    (52, "Bình Định", 1487),
    (54, "Phú Yên", 873),
    (56, "Khánh Hòa", 1232),
    (58, "Ninh Thuận", 591),
    (60, "Bình Thuận", 1231),
    (62, "Kon Tum", 541),
    (64, "Gia Lai", 1514),
    (66, "Đắk Lắk", 1870),
    (67, "Đắk Nông", 623),
    (68, "Lâm Đồng", 1297),
    (70, "Bình Phước", 995),
    (72, "Tây Ninh", 1170),
    (74, "Bình Dương", 2456),
    (75, "Đồng Nai", 3097),
    (77, "Bà Rịa - Vũng Tàu", 1149),
    (79, "TP. Hồ Chí Minh", 8993),
    (80, "Long An", 1689),
    (82, "Tiền Giang", 1765),
    (83, "Bến Tre", 1289),
    (84, "Trà Vinh", 1010),
    (86, "Vĩnh Long", 1023),
    (87, "Đồng Tháp", 1600),
    (89, "An Giang", 1908),
    (91, "Kiên Giang", 1723),
    (92, "Cần Thơ", 1236),
    (93, "Hậu Giang", 734),
    (94, "Sóc Trăng", 1200),
    (95, "Bạc Liêu", 907),
    (96, "Cà Mau", 1194),
];

/// Family names with their share in tenths of a percent.
pub const FAMILY_NAMES: [(&str, u32); 42] = [
    ("Nguyễn", 384),
    ("Trần", 110),
    ("Lê", 95),
    ("Phạm", 71),
    ("Hoàng", 31),
    ("Huỳnh", 20),
    ("Phan", 45),
    ("Vũ", 20),
    ("Võ", 19),
    ("Đặng", 21),
    ("Bùi", 20),
    ("Đỗ", 14),
    ("Hồ", 13),
    ("Ngô", 13),
    ("Dương", 10),
    ("Lý", 5),
    ("Đinh", 5),
    ("Đào", 5),
    ("Trương", 5),
    ("Lâm", 4),
    ("Mai", 4),
    ("Cao", 4),
    ("Hà", 4),
    ("Tạ", 4),
    ("Lương", 4),
    ("Đoàn", 4),
    ("Trịnh", 4),
    ("Lưu", 4),
    ("Tô", 4),
    ("Thái", 4),
    ("Châu", 4),
    ("Triệu", 4),
    ("Chu", 3),
    ("Quách", 3),
    ("Kiều", 3),
    ("Vương", 3),
    ("Phùng", 3),
    ("Lại", 3),
    ("Hứa", 3),
    ("Nông", 3),
    ("Lò", 2),
    ("Hầu", 2),
];

/// The middle names most people born before the 1980s carry.
pub const TRADITIONAL_MIDDLE_MALE: &str = "Văn";
pub const TRADITIONAL_MIDDLE_FEMALE: &str = "Thị";

pub const MIDDLE_NAMES_MALE: [&str; 16] = [
    "Hữu", "Đức", "Minh", "Quốc", "Thành", "Công", "Xuân", "Quang", "Ngọc", "Anh", "Gia", "Hoàng",
    "Trung", "Tuấn", "Bảo", "Đình",
];

pub const MIDDLE_NAMES_FEMALE: [&str; 16] = [
    "Ngọc", "Thu", "Thanh", "Phương", "Minh", "Bảo", "Khánh", "Kim", "Mai", "Hồng", "Thùy", "Diệu",
    "Hoài", "Thảo", "Mỹ", "Bích",
];

/// Given names. Both tone placements of a syllable occur in real registries ("Hòa" and "Hoà",
/// "Thúy" and "Thuý"): matching must treat them as equal, so both are here.
pub const GIVEN_NAMES_MALE: [&str; 34] = [
    "Anh", "Hùng", "Dũng", "Minh", "Tuấn", "Hải", "Nam", "Long", "Hoàng", "Quân", "Khoa", "Phúc",
    "Bảo", "Huy", "Đức", "Thắng", "Sơn", "Trung", "Việt", "Khang", "Lâm", "Tài", "Hiếu", "Thịnh",
    "Cường", "Hòa", "Hoà", "Toàn", "Quý", "Vinh", "Nghĩa", "Phong", "Khải", "Tùng",
];

pub const GIVEN_NAMES_FEMALE: [&str; 34] = [
    "Lan", "Hương", "Hoa", "Mai", "Linh", "Trang", "Ngọc", "Thảo", "Hằng", "Hà", "Nhung", "Phương",
    "Thủy", "Thuỷ", "Yến", "Vy", "Anh", "Ngân", "Hạnh", "Huyền", "Nga", "Hòa", "Hoà", "Thúy",
    "Thuý", "Loan", "Dung", "Oanh", "Châu", "Quỳnh", "My", "Trâm", "Uyên", "Giang",
];

/// The province's name, for the issuing office.
pub fn province_name(code: u16) -> &'static str {
    PROVINCES
        .iter()
        .find(|(c, _, _)| *c == code)
        .map_or("", |(_, name, _)| name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use emrtd::cccd::id_number::PROVINCE_CODES;

    #[test]
    fn provinces_are_the_province_codes() {
        let codes: Vec<u16> = PROVINCES.iter().map(|(c, _, _)| *c).collect();
        assert_eq!(codes, PROVINCE_CODES);
    }
}
