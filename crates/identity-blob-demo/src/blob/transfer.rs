//! The transfer: list, create-visible check, upload (one Put Blob, or blocks with progress),
//! managed download and byte-for-byte verification.

use std::time::Instant;

use azure_core::http::RequestContent;
use azure_storage_blob::BlobServiceClient;
use azure_storage_blob::models::BlockLookupList;

use crate::explain::Context;
use crate::output::{Output, PROGRESS_THRESHOLD, mib};

use super::{BLOB_NAME, BLOCK_SIZE, DemoOptions, list_containers};

pub(super) struct Transferred {
    pub(super) listed: bool,
    pub(super) blocks: usize,
}

pub(super) async fn transfer(
    service: &BlobServiceClient,
    options: &DemoOptions,
    payload: &[u8],
    output: &mut Output,
    _cx: &Context,
) -> Result<Transferred, (&'static str, azure_core::Error)> {
    // List again: the new container must be visible.
    let names = list_containers(service)
        .await
        .map_err(|e| ("list containers", e))?;
    let listed = names.iter().any(|n| n == &options.container);
    output.line(format!(
        "list       {} container(s); {} {}",
        names.len(),
        options.container,
        if listed { "is listed" } else { "is NOT listed" }
    ));

    let blob = service.blob_client(&options.container, BLOB_NAME);
    let total = payload.len() as u64;
    let step = Instant::now();
    let blocks = if payload.len() > BLOCK_SIZE {
        let block_client = blob.block_blob_client();
        let mut ids = Vec::new();
        let show = total >= PROGRESS_THRESHOLD;
        if show {
            output.progress("upload", 0, total);
        }
        let mut sent = 0u64;
        for (i, chunk) in payload.chunks(BLOCK_SIZE).enumerate() {
            // Block ids must all have the same length within a blob.
            let id = format!("block-{i:06}").into_bytes();
            block_client
                .stage_block(
                    &id,
                    chunk.len() as u64,
                    RequestContent::from(chunk.to_vec()),
                    None,
                )
                .await
                .map_err(|e| ("upload (Put Block)", e))?;
            ids.push(id);
            sent += chunk.len() as u64;
            if show {
                output.progress("upload", sent, total);
            }
        }
        let list = BlockLookupList {
            latest: Some(ids.clone()),
            ..BlockLookupList::default()
        };
        block_client
            .commit_block_list(
                list.try_into()
                    .map_err(|e| ("upload (Put Block List)", e))?,
                None,
            )
            .await
            .map_err(|e| ("upload (Put Block List)", e))?;
        output.end_progress();
        ids.len()
    } else {
        blob.upload(RequestContent::from(payload.to_vec()), None)
            .await
            .map_err(|e| ("upload", e))?;
        0
    };
    let how = if blocks > 0 {
        format!("{blocks} blocks of up to {}", mib(BLOCK_SIZE as u64))
    } else {
        "one request".to_owned()
    };
    output.line(format!(
        "upload     {} as {BLOB_NAME} in {how}, {} ms",
        mib(total),
        step.elapsed().as_millis()
    ));

    let step = Instant::now();
    let downloaded = blob
        .download(None)
        .await
        .map_err(|e| ("download", e))?
        .body
        .collect()
        .await
        .map_err(|e| ("download", e))?;
    if downloaded.as_ref() != payload {
        return Err((
            "verify",
            azure_core::Error::with_message(
                azure_core::error::ErrorKind::DataConversion,
                format!(
                    "the downloaded blob ({} bytes) differs from the upload ({} bytes)",
                    downloaded.len(),
                    payload.len()
                ),
            ),
        ));
    }
    output.line(format!(
        "download   {} in {} ms, identical to the upload",
        mib(downloaded.len() as u64),
        step.elapsed().as_millis()
    ));
    Ok(Transferred { listed, blocks })
}
