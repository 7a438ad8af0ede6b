//! The arguments a process gives another program's `main` (a child object
//! with an empty target): its argv after argv[0], carried as a JSON list
//! of strings, or as nothing for none. The host and the native guest SDK
//! read them here, so both accept and refuse the same.

/// The argv after argv[0] that `args` carries.
pub fn parse(args: &[u8]) -> Result<Vec<String>, String> {
    if args.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_slice(args)
        .map_err(|e| format!("the arguments of a program's main must be a JSON list of strings: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_list_of_strings_or_nothing() {
        assert_eq!(parse(b""), Ok(Vec::new()));
        assert_eq!(parse(br#"["-v","x y"]"#), Ok(vec!["-v".to_owned(), "x y".to_owned()]));
        let refused = parse(b"null").unwrap_err();
        assert!(refused.starts_with("the arguments of a program's main must be a JSON list of strings: "), "{refused}");
        assert!(parse(b"[1]").is_err());
    }
}
