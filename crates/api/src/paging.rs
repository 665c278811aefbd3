//! Paged listings: `?page=1&limit=50` in, `{"data":[...],"meta":{"page","limit","count"}}`
//! out.

use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;

/// Items per page when `limit` is not given.
pub(crate) const DEFAULT_LIMIT: u64 = 50;
/// The largest `limit`.
pub(crate) const MAX_LIMIT: u64 = 10_000;
/// The largest `page` (what the documented schema allows).
pub(crate) const MAX_PAGE: u64 = 1_000_000;

/// A validated page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Paging {
    page: u64,
    limit: u64,
}

impl Paging {
    /// `page` (1-based, default 1) and `limit` (1 to [`MAX_LIMIT`], default
    /// [`DEFAULT_LIMIT`]).
    ///
    /// # Errors
    /// A 400 naming `page` or `limit`.
    pub(crate) fn new(page: Option<u64>, limit: Option<u64>) -> Result<Self, ApiError> {
        let page = page.unwrap_or(1);
        if !(1..=MAX_PAGE).contains(&page) {
            return Err(ApiError::bad_field("page", format!("use 1 to {MAX_PAGE}")));
        }
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::bad_field(
                "limit",
                format!("use 1 to {MAX_LIMIT}"),
            ));
        }
        Ok(Self { page, limit })
    }

    /// The first item alone.
    pub(crate) const fn one() -> Self {
        Self { page: 1, limit: 1 }
    }

    /// This page of `items` (all matches, in order).
    pub(crate) fn apply<T>(self, items: Vec<T>) -> Page<T> {
        let count = items.len() as u64;
        let (skip, take) = self.window();
        let skip = usize::try_from(skip).unwrap_or(usize::MAX);
        let take = usize::try_from(take).unwrap_or(usize::MAX);
        self.page_of(items.into_iter().skip(skip).take(take).collect(), count)
    }

    /// Items to skip, then to take, for this page of a listing read page by page.
    pub(crate) const fn window(self) -> (u64, u64) {
        ((self.page - 1).saturating_mul(self.limit), self.limit)
    }

    /// A page of `data` (read with [`Paging::window`]) out of `count` items.
    pub(crate) const fn page_of<T>(self, data: Vec<T>, count: u64) -> Page<T> {
        Page {
            data,
            meta: Meta {
                page: self.page,
                limit: self.limit,
                count,
                hasnext: self.page.saturating_mul(self.limit) < count,
            },
        }
    }
}

/// Where a page sits in the whole listing.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub(crate) struct Meta {
    /// This page's number, from 1.
    page: u64,
    /// Items per page.
    limit: u64,
    /// Items matching, over all pages.
    count: u64,
    /// Whether a later page has items (as EMQX's listings say).
    hasnext: bool,
}

/// One page of a listing.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Page<T> {
    /// The items of this page.
    pub(crate) data: Vec<T>,
    /// Paging details.
    meta: Meta,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_slice_and_count() {
        let page = Paging::new(Some(2), Some(2))
            .expect("valid")
            .apply(vec![1, 2, 3, 4, 5]);
        assert_eq!(page.data, [3, 4]);
        assert_eq!(page.meta.count, 5);
        let far = Paging::new(Some(MAX_PAGE), Some(MAX_LIMIT))
            .expect("valid")
            .apply(vec![1]);
        assert!(far.data.is_empty());
        assert_eq!(
            Paging::new(Some(0), None)
                .expect_err("page 0")
                .field
                .as_deref(),
            Some("page")
        );
        assert!(Paging::new(Some(MAX_PAGE + 1), None).is_err());
        assert_eq!(
            Paging::new(None, Some(10_001))
                .expect_err("too many")
                .field
                .as_deref(),
            Some("limit")
        );
    }
}
