//! The checked-in OpenAPI document is the one the code generates.

#[test]
fn the_checked_in_openapi_document_is_current() {
    let generated = zy_server::api::openapi()
        .to_pretty_json()
        .expect("serialises");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../openapi/zhengyun.json");
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in.trim_end() == generated.trim_end(),
        "openapi/zhengyun.json is out of date: run `cargo xtask openapi` and commit the result"
    );
}

#[test]
fn every_operation_documents_its_errors() {
    let doc = zy_server::api::openapi();
    for (path, item) in &doc.paths.paths {
        for op in [&item.get, &item.post, &item.put, &item.patch, &item.delete]
            .into_iter()
            .flatten()
        {
            assert!(op.operation_id.is_some(), "{path} has no operation id");
            if !path.starts_with("/healthz") && !path.starts_with("/metrics") {
                assert!(
                    op.responses.responses.contains_key("default"),
                    "{path} does not document the error body"
                );
            }
        }
    }
}
