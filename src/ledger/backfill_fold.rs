//! Folding backfill events (placeholder until the backfill engine lands): the
//! state is the last payload merged over the previous one, so nothing is lost.

use super::event::Event;
use super::fold::SubjectState;

/// Folds a backfill event.
pub fn step(prev: Option<&SubjectState>, event: &Event) -> Result<Option<SubjectState>, String> {
    let payload: serde_json::Value =
        serde_json::from_str(&event.payload).map_err(|e| format!("payload is not JSON: {e}"))?;
    let mut state = match prev {
        Some(SubjectState::Backfill(v)) => v.clone(),
        None => serde_json::json!({}),
        Some(_) => return Err(format!("subject {} is not a backfill", event.subject)),
    };
    if let (Some(obj), Some(new)) = (state.as_object_mut(), payload.as_object()) {
        for (k, v) in new {
            obj.insert(k.clone(), v.clone());
        }
        obj.insert("last_event".into(), serde_json::json!(event.kind.as_str()));
    }
    Ok(Some(SubjectState::Backfill(state)))
}
