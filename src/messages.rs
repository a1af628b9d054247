//! What the desk reads: one sentence per outcome, in Vietnamese and in English, saying what to
//! do next where there is something to do.

use bhyt_proto::v1::ResultCode;

/// (Vietnamese, English) for an outcome.
pub fn for_result(result: ResultCode) -> (&'static str, &'static str) {
    use ResultCode as R;
    match result {
        R::CardValid => ("Thẻ BHYT hợp lệ.", "The insurance card is valid."),
        R::CardValidDefenceInsurer => (
            "Thẻ do BHXH Bộ Quốc phòng quản lý: đề nghị kiểm tra giấy tờ tùy thân.",
            "Card managed by the defence insurer: check the patient's ID papers.",
        ),
        R::CardValidPublicSecurityInsurer => (
            "Thẻ do BHXH Công an nhân dân quản lý: đề nghị kiểm tra giấy tờ tùy thân.",
            "Card managed by the public-security insurer: check the patient's ID papers.",
        ),
        R::ReissuedOldCardExpired => (
            "Thẻ cũ đã hết giá trị, đã được cấp thẻ mới: dùng thông tin thẻ mới.",
            "The old card has expired and a new card was issued: use the new card's details.",
        ),
        R::ReissuedOldCardValid => (
            "Thẻ cũ còn giá trị, đã được cấp thẻ mới: dùng thông tin thẻ mới.",
            "The old card is still valid but a new card was issued: use the new card's details.",
        ),
        R::CardExpired => (
            "Thẻ BHYT đã hết hạn sử dụng.",
            "The insurance card has expired.",
        ),
        R::CardNotYetValid => (
            "Thẻ BHYT chưa đến thời hạn sử dụng.",
            "The insurance card is not valid yet.",
        ),
        R::NoCardInformation => (
            "Không có thông tin thẻ BHYT.",
            "No insurance card was found for this person.",
        ),
        R::WrongCardNumber => ("Sai mã thẻ BHYT.", "Wrong insurance card number."),
        R::WrongProvinceCode => ("Sai mã tỉnh trên thẻ.", "Wrong province code on the card."),
        R::WrongBenefitCode => (
            "Sai mã quyền lợi trên thẻ.",
            "Wrong benefit code on the card.",
        ),
        R::OperatorNotRegistered => (
            "Số CCCD của cán bộ tra cứu chưa được cơ sở đăng ký.",
            "The staff member's ID is not registered by this facility.",
        ),
        R::OperatorNameMismatch => (
            "Họ tên cán bộ tra cứu không khớp.",
            "The staff member's name does not match.",
        ),
        R::NameMismatch => (
            "Họ tên không khớp với thông tin thẻ.",
            "The name does not match the card's records.",
        ),
        R::NameMismatchFirstCharacterRight => (
            "Họ tên không khớp (đúng ký tự đầu): kiểm tra lại cách viết.",
            "The name does not match (first letter right): check the spelling.",
        ),
        R::BirthDateMismatch => (
            "Ngày sinh không khớp với thông tin thẻ.",
            "The date of birth does not match the card's records.",
        ),
        R::CardDataError => (
            "Dữ liệu thẻ có lỗi tại cơ quan BHXH.",
            "The card's data has an error at the social-security office.",
        ),
        R::SourceServerError => (
            "Hệ thống BHXH báo lỗi máy chủ: thử lại sau.",
            "The social-security system reported a server error: try again later.",
        ),
        R::CardRevoked => (
            "Thẻ BHYT đã bị thu hồi.",
            "The insurance card has been revoked.",
        ),
        R::CardReduced => (
            "Thẻ BHYT đã bị báo giảm.",
            "The insurance card was reported reduced.",
        ),
        R::CardReducedMovedOutOfProvince => (
            "Thẻ đã báo giảm: chuyển đi ngoài tỉnh.",
            "Card reduced: the holder moved out of the province.",
        ),
        R::CardReducedMovedWithinProvince => (
            "Thẻ đã báo giảm: chuyển đi trong tỉnh.",
            "Card reduced: the holder moved within the province.",
        ),
        R::CardReducedReaddedSameEmployer => (
            "Thẻ đã báo giảm: tăng lại cùng đơn vị.",
            "Card reduced: re-added at the same employer.",
        ),
        R::CardReducedStoppedParticipating => (
            "Thẻ đã báo giảm: dừng tham gia.",
            "Card reduced: the holder stopped participating.",
        ),
        R::ChildWithoutCard => (
            "Trẻ em chưa có thẻ BHYT.",
            "A child without an insurance card.",
        ),
        R::SourceParameterError => (
            "Hệ thống BHXH báo sai định dạng tham số.",
            "The social-security system reported a parameter format error.",
        ),
        R::SourceAuthenticationError => (
            "Lỗi xác thực với hệ thống BHXH.",
            "Authentication with the social-security system failed.",
        ),
        R::UnknownSourceCode => (
            "Hệ thống BHXH trả mã kết quả chưa xác định: xem mã gốc.",
            "The social-security system returned an unknown result code: see the raw code.",
        ),
        R::CannotVerifyNow => (
            "Chưa thể tra cứu lúc này: dùng mã thẻ BHYT kèm giấy tờ tùy thân có ảnh.",
            "Cannot verify now: use the BHYT card number with a photo ID.",
        ),
        R::Unspecified => ("", ""),
    }
}
