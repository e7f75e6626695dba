//! Listing files (`GET /v1/files`), as pure logic: the query parameters and their validation, which
//! index serves a query (and what is left to filter in memory), the order and keyset positions, how a
//! page is filled, and the tamper-evident cursor. The DynamoDB reads are in [`crate::store_queries`];
//! the table design and the bounds are in docs/table-design.md.
//!
//! Pagination is keyset: a cursor is the position (sort value, file id) of the last item returned,
//! and the next page starts strictly after it. Walking every page returns each matching file exactly
//! once, in order, even while files are added (a file added behind the cursor is simply not part of
//! this walk). Offsets are never used.

use crate::domain::names::{name_key, normalized_name};
use crate::domain::time::{Timestamp, format};
use crate::domain::{FileRecord, FileStatus};
use crate::error::ApiError;
use crate::keys::{self, ListingArea};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::cmp::Ordering;

pub const DEFAULT_LIMIT: usize = 25;
pub const MAX_LIMIT: usize = 100;
/// The most index items one request reads (before filtering in memory): to fill a page from an
/// index, or to gather the candidates of a query that is sorted in memory, or to count.
pub const MAX_ITEMS_READ: usize = 5_000;
/// The largest DynamoDB `Limit` of one Query call (DynamoDB also stops at 1 MB).
pub const MAX_CHUNK: usize = 1_000;
/// Longer cursors were not issued by this service.
pub const MAX_CURSOR_LEN: usize = 2_048;
const MAX_Q_CHARS: usize = 255;
const MAX_CREATED_BY_CHARS: usize = 256;
/// Unknown parameter names are echoed back, at most this long.
const MAX_ECHOED_NAME_CHARS: usize = 64;

/// Every parameter `GET /v1/files` knows.
pub const PARAMETERS: [&str; 16] = [
    "parent",
    "q",
    "tag",
    "content_type",
    "created_by",
    "created_from",
    "created_to",
    "updated_from",
    "updated_to",
    "status",
    "trashed",
    "order_by",
    "limit",
    "cursor",
    "count_only",
    "include",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderField {
    CreatedAt,
    UpdatedAt,
    Name,
    Size,
}

impl OrderField {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderField::CreatedAt => "created_at",
            OrderField::UpdatedAt => "updated_at",
            OrderField::Name => "name",
            OrderField::Size => "size",
        }
    }

    /// The value a file sorts by, as text whose byte order is the intended order: fixed-width
    /// timestamps, the case-insensitive name key, zero-padded sizes.
    pub fn sort_value(self, file: &FileRecord) -> String {
        match self {
            OrderField::CreatedAt => format(&file.created_at),
            OrderField::UpdatedAt => format(&file.updated_at),
            OrderField::Name => name_key(&file.name),
            OrderField::Size => format!("{:020}", file.size),
        }
    }
}

/// `order_by`: a field, ascending or (leading `-`) descending. Ties are broken by file id in the
/// same direction, so the order is total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Order {
    pub field: OrderField,
    pub descending: bool,
}

impl Order {
    pub const DEFAULT: Order = Order {
        field: OrderField::CreatedAt,
        descending: true,
    };

    pub fn as_param(self) -> String {
        format!(
            "{}{}",
            if self.descending { "-" } else { "" },
            self.field.as_str()
        )
    }

    /// How `a` and `b` compare in this order.
    pub fn compare(self, a: &Position, b: &Position) -> Ordering {
        let ascending = (a.value.as_str(), a.id.as_str()).cmp(&(b.value.as_str(), b.id.as_str()));
        if self.descending {
            ascending.reverse()
        } else {
            ascending
        }
    }
}

/// A place in a listing's order: the sort value and the id of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub value: String,
    pub id: String,
}

impl Position {
    pub fn of(field: OrderField, file: &FileRecord) -> Position {
        Position {
            value: field.sort_value(file),
            id: file.id.clone(),
        }
    }
}

/// `trashed`: a file is in the trash while its `trashed_at` is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrashedFilter {
    /// `false` (default): only files not in the trash.
    Exclude,
    /// `true`: only files in the trash.
    Only,
    /// `all`: both.
    Include,
}

/// `content_type`: `type/subtype` matches that media type whatever its parameters; with
/// parameters, the exact (normalized) value; `type/*` a whole family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContentTypeFilter {
    Essence(String),
    Exact(String),
    Family(String),
}

impl ContentTypeFilter {
    fn parse(value: &str) -> Result<Self, ApiError> {
        let invalid = || {
            ApiError::InvalidParameter {
            name: "content_type",
            reason: "must be a media type (type/subtype, optionally with parameters) or a family (type/*)"
                .into(),
        }
        };
        if let Some(family) = value.trim_matches([' ', '\t']).strip_suffix("/*") {
            let normalized = crate::domain::validate::content_type(&format!("{family}/x"))
                .map_err(|_| invalid())?;
            let family = normalized.split('/').next().unwrap_or_default();
            if family == "*" {
                return Err(invalid());
            }
            return Ok(ContentTypeFilter::Family(family.to_string()));
        }
        let normalized = crate::domain::validate::content_type(value).map_err(|_| invalid())?;
        if normalized.contains(';') {
            Ok(ContentTypeFilter::Exact(normalized))
        } else {
            Ok(ContentTypeFilter::Essence(normalized))
        }
    }

    fn matches(&self, content_type: &str) -> bool {
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        match self {
            ContentTypeFilter::Essence(e) => essence.eq_ignore_ascii_case(e),
            ContentTypeFilter::Exact(t) => content_type.eq_ignore_ascii_case(t),
            ContentTypeFilter::Family(f) => essence
                .split('/')
                .next()
                .is_some_and(|kind| kind.eq_ignore_ascii_case(f)),
        }
    }

    fn canonical(&self) -> String {
        match self {
            ContentTypeFilter::Essence(e) => e.clone(),
            ContentTypeFilter::Exact(t) => t.clone(),
            ContentTypeFilter::Family(f) => format!("{f}/*"),
        }
    }
}

/// `<field>_from` (inclusive) and `<field>_to` (exclusive), rounded up to the millisecond, which is
/// the precision of stored timestamps (so the comparisons are exact).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimeRange {
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
}

impl TimeRange {
    pub fn contains(&self, t: &Timestamp) -> bool {
        self.from.is_none_or(|from| *t >= from) && self.to.is_none_or(|to| *t < to)
    }

    /// True when no time is in the range (`to` at or before `from`).
    pub fn is_empty(&self) -> bool {
        matches!((self.from, self.to), (Some(from), Some(to)) if from >= to)
    }

    pub fn is_bounded(&self) -> bool {
        self.from.is_some() || self.to.is_some()
    }

    /// The range as sort-key bounds of an index sorted by `<timestamp>#<id>`: `>= from` and
    /// `< to` on the text are exactly `from <= t < to` on the time.
    fn key_bounds(&self) -> KeyBounds {
        KeyBounds {
            from: self.from.as_ref().map(format),
            to: self.to.as_ref().map(format),
        }
    }
}

/// A validated `GET /v1/files` query.
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    pub parent: Option<String>,
    /// `q`, as a name key: the file's name key must contain it.
    pub name_contains: Option<String>,
    pub tag: Option<String>,
    pub content_type: Option<ContentTypeFilter>,
    pub created_by: Option<String>,
    pub created: TimeRange,
    pub updated: TimeRange,
    pub status: Option<FileStatus>,
    pub trashed: TrashedFilter,
    pub order: Order,
    pub limit: usize,
    pub cursor: Option<String>,
    pub count_only: bool,
    /// `include=thumbnails`: each item carries its presigned thumbnail links (a gallery's page in one
    /// request). Not part of the fingerprint: like `limit`, it changes what each item shows, not which
    /// items come, so a cursor stays valid with or without it.
    pub include_thumbnails: bool,
    /// Set from a token limited to some parents (`files_parents`, sorted): only their files match,
    /// and a listing without `parent` reads only their index ranges (see [`ListQuery::plan`]).
    pub permitted_parents: Option<Vec<String>>,
}

impl Default for ListQuery {
    fn default() -> Self {
        ListQuery {
            parent: None,
            name_contains: None,
            tag: None,
            content_type: None,
            created_by: None,
            created: TimeRange::default(),
            updated: TimeRange::default(),
            status: None,
            trashed: TrashedFilter::Exclude,
            order: Order::DEFAULT,
            limit: DEFAULT_LIMIT,
            cursor: None,
            count_only: false,
            include_thumbnails: false,
            permitted_parents: None,
        }
    }
}

fn invalid(name: &'static str, reason: impl Into<String>) -> ApiError {
    ApiError::InvalidParameter {
        name,
        reason: reason.into(),
    }
}

/// Free text of 1 to `max` characters without control characters.
fn text(name: &'static str, value: &str, max: usize) -> Result<String, ApiError> {
    let chars = value.chars().count();
    if chars == 0 || chars > max {
        return Err(invalid(name, format!("must be 1 to {max} characters")));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(name, "must not contain control characters"));
    }
    Ok(value.to_string())
}

/// An RFC 3339 date-time, rounded up to the millisecond (see [`TimeRange`]).
fn timestamp(name: &'static str, value: &str) -> Result<Timestamp, ApiError> {
    use chrono::{Datelike, Timelike};
    let parsed = chrono::DateTime::parse_from_rfc3339(value.trim())
        .map_err(|_| {
            invalid(
                name,
                "must be an RFC 3339 date-time, e.g. 2026-01-31T12:00:00Z",
            )
        })?
        .with_timezone(&chrono::Utc);
    let sub_milli = parsed.nanosecond() % 1_000_000;
    let rounded = if sub_milli == 0 {
        Some(parsed)
    } else {
        parsed.checked_add_signed(chrono::Duration::nanoseconds(i64::from(
            1_000_000 - sub_milli,
        )))
    };
    // RFC 3339 allows years 0000 to 9999, stored timestamps are within 0001 to 9999 (fixed-width
    // keys): a bound outside is the same as the nearest bound inside, so it is clamped, not refused.
    let first = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(-62_135_596_800_000);
    let last = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(253_402_300_799_999);
    match (rounded, first, last) {
        (Some(t), Some(first), _) if t.year() < 1 => Ok(first),
        (Some(t), _, Some(last)) if t.year() > 9999 => Ok(last),
        (None, _, Some(last)) => Ok(last),
        (Some(t), _, _) => Ok(t),
        _ => Err(invalid(name, "must be between years 1 and 9999 (UTC)")),
    }
}

fn range(
    from_name: &'static str,
    from: Option<&str>,
    to_name: &'static str,
    to: Option<&str>,
) -> Result<TimeRange, ApiError> {
    let range = TimeRange {
        from: from.map(|v| timestamp(from_name, v)).transpose()?,
        to: to.map(|v| timestamp(to_name, v)).transpose()?,
    };
    // A `to` at or before `from` is an empty range: it matches nothing (see `matches_nothing`).
    let _ = (from_name, to_name);
    Ok(range)
}

impl ListQuery {
    /// Validates the query parameters (decoded names and values, repeated names repeated). Unknown
    /// and repeated parameters are refused, so that a typo never silently widens a listing.
    pub fn parse<'a>(
        params: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, ApiError> {
        let mut values: [Option<&'a str>; PARAMETERS.len()] = [None; PARAMETERS.len()];
        for (name, value) in params {
            let Some(index) = PARAMETERS.iter().position(|known| *known == name) else {
                return Err(ApiError::UnknownParameter(
                    name.chars().take(MAX_ECHOED_NAME_CHARS).collect(),
                ));
            };
            if values[index].replace(value).is_some() {
                return Err(invalid(PARAMETERS[index], "must be given at most once"));
            }
        }
        let get = |name: &str| {
            PARAMETERS
                .iter()
                .position(|known| *known == name)
                .and_then(|i| values[i])
        };

        let mut query = ListQuery {
            parent: get("parent")
                .map(|v| text("parent", v, crate::domain::validate::MAX_PARENT_CHARS))
                .transpose()?,
            name_contains: get("q")
                .map(|v| text("q", v, MAX_Q_CHARS).map(|q| normalized_name(&q)))
                .transpose()?,
            tag: get("tag")
                .map(|v| {
                    let tag = text("tag", v, crate::domain::validate::MAX_TAG_CHARS)?;
                    if tag.trim() != tag {
                        return Err(invalid("tag", "must not start or end with white space"));
                    }
                    Ok(tag)
                })
                .transpose()?,
            content_type: get("content_type")
                .map(ContentTypeFilter::parse)
                .transpose()?,
            created_by: get("created_by")
                .map(|v| text("created_by", v, MAX_CREATED_BY_CHARS))
                .transpose()?,
            created: range(
                "created_from",
                get("created_from"),
                "created_to",
                get("created_to"),
            )?,
            updated: range(
                "updated_from",
                get("updated_from"),
                "updated_to",
                get("updated_to"),
            )?,
            ..ListQuery::default()
        };
        if let Some(status) = get("status") {
            query.status = Some(match status {
                "pending" => FileStatus::Pending,
                "ready" => FileStatus::Ready,
                "rejected" => FileStatus::Rejected,
                _ => return Err(invalid("status", "must be pending, ready or rejected")),
            });
        }
        if let Some(trashed) = get("trashed") {
            query.trashed = match trashed {
                "false" => TrashedFilter::Exclude,
                "true" => TrashedFilter::Only,
                "all" => TrashedFilter::Include,
                _ => return Err(invalid("trashed", "must be false, true or all")),
            };
        }
        if let Some(order) = get("order_by") {
            let (descending, field) = match order.strip_prefix('-') {
                Some(field) => (true, field),
                None => (false, order),
            };
            let field = match field {
                "created_at" => OrderField::CreatedAt,
                "updated_at" => OrderField::UpdatedAt,
                "name" => OrderField::Name,
                "size" => OrderField::Size,
                _ => {
                    return Err(invalid(
                        "order_by",
                        "must be created_at, updated_at, name or size, with a leading - for descending",
                    ));
                }
            };
            query.order = Order { field, descending };
        }
        if let Some(limit) = get("limit") {
            query.limit = limit
                .parse::<usize>()
                .ok()
                .filter(|l| (1..=MAX_LIMIT).contains(l))
                .ok_or_else(|| {
                    invalid(
                        "limit",
                        format!("must be a whole number from 1 to {MAX_LIMIT}"),
                    )
                })?;
        }
        if let Some(count_only) = get("count_only") {
            query.count_only = match count_only {
                "true" => true,
                "false" => false,
                _ => return Err(invalid("count_only", "must be true or false")),
            };
        }
        if let Some(include) = get("include") {
            // A comma-separated list (JSON:API's `include`), so more parts can be opted into later.
            for part in include.split(',').map(str::trim) {
                match part {
                    "thumbnails" => query.include_thumbnails = true,
                    _ => {
                        return Err(invalid(
                            "include",
                            "must be a comma-separated list of: thumbnails",
                        ));
                    }
                }
            }
        }
        if let Some(cursor) = get("cursor") {
            if query.count_only {
                return Err(invalid(
                    "cursor",
                    "cannot be combined with count_only=true (a count covers every page)",
                ));
            }
            if cursor.is_empty() || cursor.len() > MAX_CURSOR_LEN {
                return Err(ApiError::InvalidCursor);
            }
            query.cursor = Some(cursor.to_string());
        }
        Ok(query)
    }

    /// Limits the listing to the parents a token names (`Principal::parents`; `None`: the tenant).
    pub fn limit_to(&mut self, parents: Option<&[String]>) {
        self.permitted_parents = parents.map(<[String]>::to_vec);
    }

    /// True when `parent` is one this listing may show (always, unless limited).
    fn permits(&self, parent: Option<&str>) -> bool {
        match (&self.permitted_parents, parent) {
            (None, _) => true,
            (Some(permitted), Some(parent)) => permitted.iter().any(|p| p == parent),
            (Some(_), None) => false,
        }
    }

    /// True when no file can match: a time range whose `to` is at or before its `from`, or a
    /// `parent` outside a limited token's parents (an empty page, as for a parent of another
    /// tenant). Answered without reading anything (an empty page, a count of 0).
    pub fn matches_nothing(&self) -> bool {
        self.created.is_empty()
            || self.updated.is_empty()
            || self
                .parent
                .as_deref()
                .is_some_and(|parent| !self.permits(Some(parent)))
    }

    /// True when `file` passes every filter of the query (the ones an index key already applied
    /// included: cheap, and it keeps in-memory plans and stale tag entries right).
    pub fn matches(&self, file: &FileRecord) -> bool {
        let trashed = file.trashed_at.is_some();
        let trash_ok = match self.trashed {
            TrashedFilter::Exclude => !trashed,
            TrashedFilter::Only => trashed,
            TrashedFilter::Include => true,
        };
        trash_ok
            && self.permits(file.parent.as_deref())
            && self
                .parent
                .as_ref()
                .is_none_or(|p| file.parent.as_ref() == Some(p))
            && self.tag.as_ref().is_none_or(|t| file.tags.contains(t))
            && self
                .name_contains
                .as_ref()
                .is_none_or(|q| normalized_name(&file.name).contains(q.as_str()))
            && self
                .content_type
                .as_ref()
                .is_none_or(|c| c.matches(&file.content_type))
            && self
                .created_by
                .as_ref()
                .is_none_or(|c| &file.created_by.id == c)
            && self.status.is_none_or(|s| file.status == s)
            && self.created.contains(&file.created_at)
            && self.updated.contains(&file.updated_at)
    }

    /// SHA-256 of the normalized query without `cursor` and `limit` (which may change from page to
    /// page): a cursor is only valid for the query it was issued for.
    pub fn fingerprint(&self) -> [u8; 32] {
        let ts = |t: &Option<Timestamp>| t.as_ref().map(format);
        let canonical = serde_json::json!([
            "files-list-v1",
            self.parent,
            self.name_contains,
            self.tag,
            self.content_type.as_ref().map(ContentTypeFilter::canonical),
            self.created_by,
            ts(&self.created.from),
            ts(&self.created.to),
            ts(&self.updated.from),
            ts(&self.updated.to),
            self.status.map(FileStatus::as_str),
            format!("{:?}", self.trashed),
            self.order.as_param(),
            // A cursor of a token limited to some parents is a position in their merged order:
            // it is valid only for a token limited to the same ones.
            self.permitted_parents,
        ]);
        Sha256::digest(canonical.to_string().as_bytes()).into()
    }

    /// The listing areas this query reads: files in the trash are indexed in partitions of their
    /// own ([`ListingArea`]), so the default listing never reads a trashed file, nor `trashed=true`
    /// a live one; `trashed=all` reads both and merges them.
    fn areas(&self) -> &'static [ListingArea] {
        match self.trashed {
            TrashedFilter::Exclude => &[ListingArea::Live],
            TrashedFilter::Only => &[ListingArea::Trash],
            TrashedFilter::Include => &[ListingArea::Live, ListingArea::Trash],
        }
    }

    /// One range of `index`, in every area the query reads: the partition of each area, the same
    /// bounds and direction.
    fn scans_of(
        &self,
        tenant: &str,
        index: Index,
        partition: impl Fn(ListingArea) -> String,
        bounds: KeyBounds,
        descending: bool,
    ) -> Vec<Scan> {
        self.areas()
            .iter()
            .map(|&area| Scan::new(tenant, index, partition(area), bounds.clone(), descending))
            .collect()
    }

    /// The index ranges of a limited token's parents, in every area read (`None` when not
    /// limited or when `parent` narrows the listing to one of them).
    fn permitted_scans(&self, tenant: &str, index: Index, descending: bool) -> Option<Vec<Scan>> {
        if self.parent.is_some() {
            return None;
        }
        let bounds = match index {
            Index::ParentByCreated => self.created.key_bounds(),
            _ => KeyBounds::default(),
        };
        let parents = self.permitted_parents.as_ref()?;
        Some(
            parents
                .iter()
                .flat_map(|parent| {
                    self.scans_of(
                        tenant,
                        index,
                        |area| keys::parent_gsi_pk(tenant, area, Some(parent)),
                        bounds.clone(),
                        descending,
                    )
                })
                .collect(),
        )
    }

    /// How this query is served.
    pub fn plan(&self, tenant: &str) -> Plan {
        let descending = self.order.descending;
        let field = self.order.field;
        // A token limited to some parents never reads tenant-wide (or tag-wide) ranges: its
        // parents' ranges, merged in the order when their index has it, else gathered and sorted.
        let merged_index = match field {
            OrderField::CreatedAt => Some(Index::ParentByCreated),
            OrderField::Name => Some(Index::ParentByName),
            _ => None,
        };
        if let Some(scans) =
            merged_index.and_then(|index| self.permitted_scans(tenant, index, descending))
        {
            return Plan::of(scans);
        }
        let in_order = if let Some(parent) = &self.parent {
            let partition = |area| keys::parent_gsi_pk(tenant, area, Some(parent));
            match field {
                OrderField::Name => Some(self.scans_of(
                    tenant,
                    Index::ParentByName,
                    partition,
                    KeyBounds::default(),
                    descending,
                )),
                OrderField::CreatedAt => Some(self.scans_of(
                    tenant,
                    Index::ParentByCreated,
                    partition,
                    self.created.key_bounds(),
                    descending,
                )),
                _ => None,
            }
        } else if let Some(tag) = &self.tag {
            (field == OrderField::CreatedAt).then(|| {
                self.scans_of(
                    tenant,
                    Index::Tag,
                    |area| keys::tag_pk(tenant, area, tag),
                    self.created.key_bounds(),
                    descending,
                )
            })
        } else {
            let partition = |area| keys::tenant_gsi_pk(tenant, area);
            match field {
                OrderField::CreatedAt => Some(self.scans_of(
                    tenant,
                    Index::TenantByCreated,
                    partition,
                    self.created.key_bounds(),
                    descending,
                )),
                OrderField::UpdatedAt => Some(self.scans_of(
                    tenant,
                    Index::TenantByUpdated,
                    partition,
                    self.updated.key_bounds(),
                    descending,
                )),
                _ => None,
            }
        };
        match in_order {
            Some(scans) => Plan::of(scans),
            None => Plan::Sort(self.candidate_scans(tenant)),
        }
    }

    /// The index reads whose files include every match, as sources that each hold every match
    /// alone (see [`Candidates`]). For a token limited to some parents (and no `parent`): one
    /// source, all of its parents' ranges. Else, narrowest first: the parent's files, the tag's
    /// files, the tenant's files in the created or updated range; the tenant's files without any
    /// range only when nothing narrower applies. Each in every listing area the query reads.
    pub fn candidate_scans(&self, tenant: &str) -> Candidates {
        // Gathered whole and sorted in memory: the direction of the reads does not matter.
        if let Some(scans) = self.permitted_scans(tenant, Index::ParentByCreated, false) {
            return Candidates(vec![scans]);
        }
        let tenant_wide = |area| keys::tenant_gsi_pk(tenant, area);
        let mut sources = Vec::new();
        if let Some(parent) = &self.parent {
            sources.push(self.scans_of(
                tenant,
                Index::ParentByCreated,
                |area| keys::parent_gsi_pk(tenant, area, Some(parent)),
                self.created.key_bounds(),
                false,
            ));
        }
        if let Some(tag) = &self.tag {
            sources.push(self.scans_of(
                tenant,
                Index::Tag,
                |area| keys::tag_pk(tenant, area, tag),
                self.created.key_bounds(),
                false,
            ));
        }
        if self.created.is_bounded() {
            sources.push(self.scans_of(
                tenant,
                Index::TenantByCreated,
                tenant_wide,
                self.created.key_bounds(),
                false,
            ));
        }
        if self.updated.is_bounded() {
            sources.push(self.scans_of(
                tenant,
                Index::TenantByUpdated,
                tenant_wide,
                self.updated.key_bounds(),
                false,
            ));
        }
        if sources.is_empty() {
            sources.push(self.scans_of(
                tenant,
                Index::TenantByCreated,
                tenant_wide,
                KeyBounds::default(),
                false,
            ));
        }
        Candidates(sources)
    }

    /// True when filters remain after `scan`'s key condition, so that many index items may be read
    /// per file returned.
    fn is_selective_on(&self, scan: &Scan) -> bool {
        let sorted_by = scan.index.order_field();
        self.name_contains.is_some()
            || self.content_type.is_some()
            || self.created_by.is_some()
            || self.status.is_some()
            || (self.tag.is_some() && scan.index != Index::Tag)
            || (self.parent.is_some() && !scan.index.is_by_parent())
            || (self.created.is_bounded() && sorted_by != OrderField::CreatedAt)
            || (self.updated.is_bounded() && sorted_by != OrderField::UpdatedAt)
    }

    /// One page from the pages of several scans of one order (a limited token's parents, the live
    /// and the trash areas of `trashed=all`), each read from the same cursor position: the first `limit` of their files in the order. `more`:
    /// some scan has files after its page. Files not read from a scan that has more all come after
    /// its last one, hence after the page's last one, so the next page starts right there.
    pub fn merge_pages(&self, files: Vec<FileRecord>, more: bool) -> Page {
        let field = self.order.field;
        let mut files: Vec<(Position, FileRecord)> = files
            .into_iter()
            .map(|f| (Position::of(field, &f), f))
            .collect();
        files.sort_by(|(a, _), (b, _)| self.order.compare(a, b));
        files.dedup_by(|(a, _), (b, _)| a.id == b.id);
        let next = (files.len() > self.limit || (more && files.len() == self.limit))
            .then(|| files[self.limit.min(files.len()) - 1].0.clone());
        files.truncate(self.limit);
        Page {
            items: files.into_iter().map(|(_, f)| f).collect(),
            next,
        }
    }
}

/// What one request may still read of [`MAX_ITEMS_READ`] items, when candidates are gathered.
/// A set of exactly the budget is read whole: with the budget spent, one more item is asked for,
/// since DynamoDB answers a Query that stopped at its `Limit` with a LastEvaluatedKey even when
/// nothing follows; only an item beyond the budget makes the query too broad.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadBudget {
    budget: usize,
    read: usize,
}

impl ReadBudget {
    pub fn new(budget: usize) -> Self {
        ReadBudget { budget, read: 0 }
    }

    /// The `Limit` of the next Query: up to `chunk`, within the budget, and at least 1.
    pub fn next_limit(&self, chunk: usize) -> usize {
        chunk.min(self.budget.saturating_sub(self.read)).max(1)
    }

    /// Counts `items` read; 400 `query_too_broad` once more than the budget was read.
    pub fn spend(&mut self, items: usize) -> Result<(), ApiError> {
        self.read += items;
        if self.read > self.budget {
            return Err(too_broad());
        }
        Ok(())
    }
}

/// The refusal of a query that needs more than [`MAX_ITEMS_READ`] items read.
pub fn too_broad() -> ApiError {
    ApiError::QueryTooBroad(format!(
        "this query needs more than {MAX_ITEMS_READ} files read per request; narrow it with parent, tag, \
         or a created_from/created_to or updated_from/updated_to range"
    ))
}

/// The indexes a listing reads (keys in [`crate::keys`], design in docs/table-design.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Index {
    /// gsi1: a parent's files by `created_at`.
    ParentByCreated,
    /// gsi2: a tenant's files by `updated_at`.
    TenantByUpdated,
    /// gsi3: a tenant's files by `created_at`.
    TenantByCreated,
    /// gsi4: a parent's files by name key.
    ParentByName,
    /// The base table's keys-only tag entries: a tag's files by `created_at`.
    Tag,
}

impl Index {
    /// The DynamoDB index name (`None`: the base table).
    pub fn name(self) -> Option<&'static str> {
        match self {
            Index::ParentByCreated => Some("gsi1"),
            Index::TenantByUpdated => Some("gsi2"),
            Index::TenantByCreated => Some("gsi3"),
            Index::ParentByName => Some("gsi4"),
            Index::Tag => None,
        }
    }

    /// The partition and sort key attributes.
    pub fn key_attributes(self) -> (&'static str, &'static str) {
        match self {
            Index::ParentByCreated => ("gsi1pk", "gsi1sk"),
            Index::TenantByUpdated => ("gsi2pk", "gsi2sk"),
            Index::TenantByCreated => ("gsi3pk", "gsi3sk"),
            Index::ParentByName => ("gsi4pk", "gsi4sk"),
            Index::Tag => ("pk", "sk"),
        }
    }

    pub fn order_field(self) -> OrderField {
        match self {
            Index::ParentByCreated | Index::TenantByCreated | Index::Tag => OrderField::CreatedAt,
            Index::TenantByUpdated => OrderField::UpdatedAt,
            Index::ParentByName => OrderField::Name,
        }
    }

    fn is_by_parent(self) -> bool {
        matches!(self, Index::ParentByCreated | Index::ParentByName)
    }

    /// The index sort key of a position in this index's order.
    pub fn sort_key(self, position: &Position) -> String {
        match self {
            Index::ParentByName => keys::name_sort_key(&position.value, &position.id),
            _ => format!("{}#{}", position.value, position.id),
        }
    }
}

/// Sort-key bounds of a Query: `from` inclusive, `to` exclusive.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyBounds {
    pub from: Option<String>,
    pub to: Option<String>,
}

/// One Query over one partition of one index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    pub tenant: String,
    pub index: Index,
    pub partition: String,
    pub bounds: KeyBounds,
    pub descending: bool,
}

impl Scan {
    fn new(
        tenant: &str,
        index: Index,
        partition: String,
        bounds: KeyBounds,
        descending: bool,
    ) -> Scan {
        Scan {
            tenant: tenant.to_string(),
            index,
            partition,
            bounds,
            descending,
        }
    }
}

/// The index reads whose files include every match of a query sorted or counted in memory, as
/// sources: each source alone holds every match (the scans of one range in each listing area
/// read, or all of a limited token's parents), so the sources are read side by side, a chunk each
/// in turn, and the first to end is used: the smallest set wins without knowing sizes up front.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidates(pub Vec<Vec<Scan>>);

/// How a query is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// The index's order is the requested order: read from the cursor's position until the page
    /// is full, filtering in memory.
    Stream(Scan),
    /// Several partitions of one index whose order is the requested one (a limited token's
    /// parents, the two listing areas of `trashed=all`): each is streamed from the cursor's
    /// position with an equal share of the read budget, all at once, and the pages merged
    /// ([`ListQuery::merge_pages`]).
    Merge(Vec<Scan>),
    /// No index has the requested order for this partition: read the candidates (bounded),
    /// filter them and keep the page in memory ([`Gather`]).
    Sort(Candidates),
}

impl Plan {
    /// Reads in the query's order: one partition is streamed, several merged.
    fn of(mut scans: Vec<Scan>) -> Plan {
        if scans.len() == 1 {
            Plan::Stream(scans.remove(0))
        } else {
            Plan::Merge(scans)
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Plan::Stream(_) => "stream",
            Plan::Merge(_) => "merge",
            Plan::Sort(_) => "sort",
        }
    }
}

/// A file's place in a [`Gather`]: its position, compared in the query's order.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ranked {
    position: Position,
    order: Order,
}

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        self.order.compare(&self.position, &other.position)
    }
}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// What a query sorted or counted in memory keeps of its candidates while they are read: how many
/// match, and (for a page) the first `limit + 1` matches after the cursor in the query's order,
/// the extra one saying whether a next page exists. Candidates stream through it chunk by chunk,
/// so the working set is one chunk (a DynamoDB Query answer, at most 1 MB) plus `limit + 1`
/// files per source, whatever the number of candidates; BENCHMARKS.md has the memory it takes.
#[derive(Debug)]
pub struct Gather<'q> {
    query: &'q ListQuery,
    after: Option<Position>,
    /// How many of the best matches to keep: `limit + 1` for a page, 0 for a count.
    keep: usize,
    best: std::collections::BTreeMap<Ranked, FileRecord>,
    matched: usize,
}

impl<'q> Gather<'q> {
    /// Collects the page after `after`.
    pub fn page(query: &'q ListQuery, after: Option<&Position>) -> Self {
        Gather {
            query,
            after: after.cloned(),
            keep: query.limit + 1,
            best: Default::default(),
            matched: 0,
        }
    }

    /// Only counts (`count_only`).
    pub fn count(query: &'q ListQuery) -> Self {
        Gather {
            keep: 0,
            ..Gather::page(query, None)
        }
    }

    /// Takes the next candidate (`None`: a tag entry whose file no longer exists).
    pub fn offer(&mut self, file: Option<FileRecord>) {
        let Some(file) = file.filter(|f| self.query.matches(f)) else {
            return;
        };
        self.matched += 1;
        if self.keep == 0 {
            return;
        }
        let ranked = Ranked {
            position: Position::of(self.query.order.field, &file),
            order: self.query.order,
        };
        let after_cursor = self
            .after
            .as_ref()
            .is_none_or(|a| self.query.order.compare(&ranked.position, a) == Ordering::Greater);
        let among_best = self.best.len() < self.keep
            || self
                .best
                .last_key_value()
                .is_some_and(|(worst, _)| ranked < *worst);
        if !(after_cursor && among_best) {
            return;
        }
        // The same file read twice lands on the same key: kept once.
        self.best.insert(ranked, file);
        if self.best.len() > self.keep {
            self.best.pop_last();
        }
    }

    /// How many candidates matched (the answer of a count).
    pub fn matched(&self) -> usize {
        self.matched
    }

    /// The page: the first `limit` kept, and the position of the last one when more were kept.
    pub fn into_page(self) -> Page {
        let limit = self.query.limit;
        let mut items: Vec<(Ranked, FileRecord)> = self.best.into_iter().collect();
        let next = (items.len() > limit).then(|| items[limit - 1].0.position.clone());
        items.truncate(limit);
        Page {
            items: items.into_iter().map(|(_, f)| f).collect(),
            next,
        }
    }
}

/// A page of files and the position to continue after (`None`: this is the last page).
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub items: Vec<FileRecord>,
    pub next: Option<Position>,
}

impl Page {
    /// Cuts the page before its answer outgrows `budget` bytes: `sizes[i]` is the encoded size of
    /// item `i`. The first item is always kept (one item is bounded far below any budget by the
    /// limits on names, tags and metadata), so every page moves the walk forward. A cut page
    /// continues right after its last item, as a full one does. Returns how many items are kept.
    pub fn keep_within_bytes(
        &mut self,
        field: OrderField,
        sizes: &[usize],
        budget: usize,
    ) -> usize {
        let mut total = 0usize;
        let fits = sizes
            .iter()
            .take_while(|&&size| {
                total = total.saturating_add(size);
                total <= budget
            })
            .count()
            .max(1)
            .min(self.items.len());
        if fits < self.items.len() {
            self.items.truncate(fits);
            self.next = self.items.last().map(|f| Position::of(field, f));
        }
        fits
    }
}

/// Filling one page from an index in the requested order: items come in index order, filters
/// apply in memory, and reading goes on until `limit + 1` matches (the extra one says whether a
/// next page exists) or the index ends, within [`MAX_ITEMS_READ`] items.
#[derive(Debug)]
pub struct PageFill<'q> {
    query: &'q ListQuery,
    selective: bool,
    /// Index items this fill may read: [`MAX_ITEMS_READ`], or its share in a merge.
    budget: usize,
    pub items_read: usize,
    pub calls: usize,
    matches: Vec<FileRecord>,
}

impl<'q> PageFill<'q> {
    pub fn new(query: &'q ListQuery, scan: &Scan) -> Self {
        Self::with_budget(query, scan, MAX_ITEMS_READ)
    }

    pub fn with_budget(query: &'q ListQuery, scan: &Scan, budget: usize) -> Self {
        PageFill {
            query,
            selective: query.is_selective_on(scan),
            budget,
            items_read: 0,
            calls: 0,
            matches: Vec::with_capacity(query.limit + 1),
        }
    }

    fn wanted(&self) -> usize {
        self.query.limit + 1
    }

    pub fn is_full(&self) -> bool {
        self.matches.len() >= self.wanted()
    }

    pub fn budget_left(&self) -> usize {
        self.budget.saturating_sub(self.items_read)
    }

    /// True once more than the budget was read. Reading exactly the budget is not enough to stop:
    /// DynamoDB answers a Query that stopped at its `Limit` with a LastEvaluatedKey even when
    /// nothing follows, so one more item (see [`PageFill::next_chunk`]'s minimum of 1) tells an
    /// index that ends right at the budget from a longer one.
    pub fn is_over_budget(&self) -> bool {
        self.items_read > self.budget
    }

    /// The `Limit` of the next Query: what is still missing plus a little (four times that when
    /// filters remain), doubling with every further call, within the budget.
    pub fn next_chunk(&mut self) -> usize {
        let missing = self.wanted().saturating_sub(self.matches.len()).max(1);
        // Without filters a little slack still saves a second call for the odd trashed file.
        let base = if self.selective {
            missing * 4
        } else {
            missing + missing / 8 + 2
        };
        let grown = base.saturating_mul(1 << self.calls.min(10));
        self.calls += 1;
        grown.min(MAX_CHUNK).min(self.budget_left()).max(1)
    }

    /// Takes the next index item (`None`: a tag entry whose file no longer exists). Returns true
    /// when the page is full.
    pub fn offer(&mut self, file: Option<FileRecord>) -> bool {
        self.items_read += 1;
        if let Some(file) = file
            && self.query.matches(&file)
        {
            self.matches.push(file);
        }
        self.is_full()
    }

    /// The page, once the index ended (`exhausted`) or the page is full or the budget is spent.
    pub fn finish(mut self, exhausted: bool) -> Result<Page, ApiError> {
        let limit = self.query.limit;
        let field = self.query.order.field;
        if self.matches.len() > limit {
            self.matches.truncate(limit);
            let next = self.matches.last().map(|f| Position::of(field, f));
            return Ok(Page {
                items: self.matches,
                next,
            });
        }
        if exhausted {
            return Ok(Page {
                items: self.matches,
                next: None,
            });
        }
        if self.matches.len() == limit {
            // Full, but the budget ran out before the look-ahead: a next page may be empty.
            let next = self.matches.last().map(|f| Position::of(field, f));
            return Ok(Page {
                items: self.matches,
                next,
            });
        }
        Err(too_broad())
    }
}

/// Cursors: `base64url(version ‖ len(value) ‖ value ‖ id ‖ HMAC)`, the HMAC-SHA256 (key
/// `FILES_CURSOR_SECRET`) covering the tenant, the query's fingerprint and the position. A cursor
/// altered in any bit, or presented by another tenant or with another query, fails the check.
const CURSOR_VERSION: u8 = 1;
const MAC_LEN: usize = 32;
const ID_LEN: usize = 32;
const MAC_DOMAIN: &[u8] = b"files-api/list-cursor/v1\0";

fn cursor_mac(key: &[u8], tenant: &str, fingerprint: &[u8; 32]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(MAC_DOMAIN);
    mac.update(tenant.as_bytes());
    mac.update(b"\0");
    mac.update(fingerprint);
    mac
}

/// The fingerprint that revision-list cursors (`GET /v1/files/{id}/revisions`) are signed with: it
/// binds a cursor to the one file it pages through, and, being a hash of another domain than
/// [`ListQuery::fingerprint`]'s, a revision cursor never passes for a file listing's or back.
pub fn revisions_fingerprint(file_id: &str) -> [u8; 32] {
    Sha256::new()
        .chain_update(b"files-api/revisions/v1\0")
        .chain_update(file_id.as_bytes())
        .finalize()
        .into()
}

pub fn encode_cursor(
    key: &[u8],
    tenant: &str,
    fingerprint: &[u8; 32],
    position: &Position,
) -> String {
    let value = position.value.as_bytes();
    let value_len = u16::try_from(value.len()).unwrap_or(u16::MAX);
    let mut payload = Vec::with_capacity(3 + value.len() + ID_LEN + MAC_LEN);
    payload.push(CURSOR_VERSION);
    payload.extend_from_slice(&value_len.to_be_bytes());
    payload.extend_from_slice(&value[..usize::from(value_len)]);
    payload.extend_from_slice(position.id.as_bytes());
    let mut mac = cursor_mac(key, tenant, fingerprint);
    mac.update(&payload);
    payload.extend_from_slice(&mac.finalize().into_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(payload)
}

pub fn decode_cursor(
    key: &[u8],
    tenant: &str,
    fingerprint: &[u8; 32],
    cursor: &str,
) -> Result<Position, ApiError> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| ApiError::InvalidCursor)?;
    if bytes.len() < 3 + ID_LEN + MAC_LEN || bytes[0] != CURSOR_VERSION {
        return Err(ApiError::InvalidCursor);
    }
    let (payload, tag) = bytes.split_at(bytes.len() - MAC_LEN);
    let mut mac = cursor_mac(key, tenant, fingerprint);
    mac.update(payload);
    // Constant-time comparison.
    mac.verify_slice(tag).map_err(|_| ApiError::InvalidCursor)?;
    let value_len = usize::from(u16::from_be_bytes([payload[1], payload[2]]));
    if payload.len() != 3 + value_len + ID_LEN {
        return Err(ApiError::InvalidCursor);
    }
    let value =
        std::str::from_utf8(&payload[3..3 + value_len]).map_err(|_| ApiError::InvalidCursor)?;
    let id = std::str::from_utf8(&payload[3 + value_len..]).map_err(|_| ApiError::InvalidCursor)?;
    if !crate::domain::ids::is_valid_id(id) {
        return Err(ApiError::InvalidCursor);
    }
    Ok(Position {
        value: value.to_string(),
        id: id.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Thumbnails;
    use chrono::TimeZone;

    fn parse(pairs: &[(&str, &str)]) -> Result<ListQuery, ApiError> {
        ListQuery::parse(pairs.iter().copied())
    }

    /// The page a [`Gather`] keeps of `files`, offered one by one.
    fn gathered(q: &ListQuery, files: &[FileRecord], after: Option<&Position>) -> Page {
        let mut gather = Gather::page(q, after);
        for f in files {
            gather.offer(Some(f.clone()));
        }
        gather.into_page()
    }

    fn file(n: u64, name: &str) -> FileRecord {
        let at = chrono::Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
            + chrono::Duration::seconds(n as i64);
        FileRecord {
            tenant_id: "acme".into(),
            id: format!("{n:032x}"),
            name: name.into(),
            content_type: "text/plain".into(),
            size: 1000 - n,
            status: FileStatus::Ready,
            parent: Some("case-1".into()),
            tags: vec!["legal".into()],
            metadata: Default::default(),
            revision: 1,
            object_key: None,
            sha256: None,
            rejection_reason: None,
            thumbnails: Thumbnails::Pending,
            expires_at: None,
            trashed_at: None,
            created_at: at,
            created_by: crate::domain::actor::user("alice"),
            updated_by: None,
            updated_at: at + chrono::Duration::seconds(100 - n as i64),
            version: 1,
        }
    }

    #[test]
    fn defaults() {
        let q = parse(&[]).unwrap();
        assert_eq!(q.order, Order::DEFAULT);
        assert_eq!(q.limit, DEFAULT_LIMIT);
        assert_eq!(q.trashed, TrashedFilter::Exclude);
        assert!(!q.count_only);
    }

    #[test]
    fn every_bad_parameter_is_named() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("limit", "0")], "limit"),
            (&[("limit", "101")], "limit"),
            (&[("limit", "ten")], "limit"),
            (&[("limit", "-1")], "limit"),
            (&[("order_by", "colour")], "order_by"),
            (&[("order_by", "--name")], "order_by"),
            (&[("status", "done")], "status"),
            (&[("trashed", "yes")], "trashed"),
            (&[("count_only", "1")], "count_only"),
            (&[("created_from", "yesterday")], "created_from"),
            (&[("updated_to", "2026-13-01T00:00:00Z")], "updated_to"),
            (&[("content_type", "text")], "content_type"),
            (&[("content_type", "*/*")], "content_type"),
            (&[("q", "")], "q"),
            (&[("q", "a\u{7}")], "q"),
            (&[("tag", " legal")], "tag"),
            (&[("parent", "")], "parent"),
            (&[("limit", "5"), ("limit", "6")], "limit"),
            (&[("count_only", "true"), ("cursor", "abc")], "cursor"),
        ];
        for (pairs, name) in cases {
            let err = parse(pairs).unwrap_err();
            assert_eq!(err.code(), "invalid_parameter", "{pairs:?}");
            assert_eq!(err.status(), 400);
            assert!(err.to_string().contains(name), "{pairs:?}: {err}");
        }
        // A reversed or empty range is no error: it matches nothing; years 0000 and beyond 9999
        // (by rounding) are the nearest storable bounds.
        let reversed = parse(&[
            ("created_from", "2026-01-02T00:00:00Z"),
            ("updated_to", "2026-01-01T00:00:00Z"),
            ("updated_from", "2026-01-01T00:00:00Z"),
        ])
        .unwrap();
        assert!(reversed.matches_nothing());
        assert!(
            !parse(&[("created_from", "2026-01-02T00:00:00Z")])
                .unwrap()
                .matches_nothing()
        );
        let edges = parse(&[
            ("created_from", "0000-01-01T00:00:00Z"),
            ("created_to", "9999-12-31T23:59:59.9999Z"),
        ])
        .unwrap();
        assert!(!edges.matches_nothing());
        let unknown = parse(&[("colour", "red")]).unwrap_err();
        assert_eq!(unknown.code(), "invalid_parameter");
        assert!(unknown.to_string().contains("colour"));
        assert_eq!(
            parse(&[("cursor", "")]).unwrap_err().code(),
            "invalid_cursor"
        );
    }

    #[test]
    fn dates_are_inclusive_from_exclusive_to_and_rounded_up_to_the_millisecond() {
        let q = parse(&[
            ("created_from", "2026-01-01T01:00:00+01:00"),
            ("created_to", "2026-01-01T00:00:01.0000001Z"),
        ])
        .unwrap();
        let f = file(0, "a"); // created 2026-01-01T00:00:00.000Z
        assert_eq!(q.created.from, Some(f.created_at));
        assert!(q.matches(&f));
        assert_eq!(format(&q.created.to.unwrap()), "2026-01-01T00:00:01.001Z");
        assert!(q.matches(&file(1, "a")), "00:00:01.000 < 00:00:01.0000001");
        assert!(!q.matches(&file(2, "a")));
        let q = parse(&[("created_to", "2026-01-01T00:00:00Z")]).unwrap();
        assert!(!q.matches(&f), "to is exclusive");
    }

    #[test]
    fn filters() {
        let mut f = file(1, "Quarterly REPORT.pdf");
        f.content_type = "application/pdf; version=1.7".into();
        let matches = |pairs: &[(&str, &str)], f: &FileRecord| parse(pairs).unwrap().matches(f);
        assert!(matches(&[("q", "report")], &f));
        assert!(matches(&[("q", "LY rep")], &f));
        assert!(!matches(&[("q", "reports")], &f));
        assert!(matches(&[("content_type", "application/pdf")], &f));
        assert!(matches(&[("content_type", "Application/*")], &f));
        assert!(matches(
            &[("content_type", "application/pdf; version=1.7")],
            &f
        ));
        assert!(!matches(
            &[("content_type", "application/pdf; version=2")],
            &f
        ));
        assert!(!matches(&[("content_type", "image/*")], &f));
        assert!(matches(&[("tag", "legal")], &f));
        assert!(!matches(&[("tag", "Legal")], &f));
        assert!(matches(&[("created_by", "alice")], &f));
        assert!(!matches(&[("created_by", "bob")], &f));
        assert!(matches(&[("status", "ready")], &f));
        assert!(!matches(&[("status", "pending")], &f));
        assert!(matches(&[("parent", "case-1")], &f));
        assert!(!matches(&[("parent", "case-2")], &f));
        assert!(!matches(&[("trashed", "true")], &f));
        f.trashed_at = Some(f.created_at);
        assert!(!matches(&[], &f));
        assert!(matches(&[("trashed", "true")], &f));
        assert!(matches(&[("trashed", "all")], &f));
    }

    #[test]
    fn plans_use_the_index_that_has_the_order() {
        let plan = |pairs: &[(&str, &str)]| parse(pairs).unwrap().plan("acme");
        let stream_index = |p: Plan| match p {
            Plan::Stream(scan) => Some(scan.index),
            Plan::Sort(_) | Plan::Merge(_) => None,
        };
        assert_eq!(stream_index(plan(&[])), Some(Index::TenantByCreated));
        assert_eq!(
            stream_index(plan(&[("order_by", "updated_at")])),
            Some(Index::TenantByUpdated)
        );
        assert_eq!(
            stream_index(plan(&[("parent", "p")])),
            Some(Index::ParentByCreated)
        );
        assert_eq!(
            stream_index(plan(&[("parent", "p"), ("order_by", "-name")])),
            Some(Index::ParentByName)
        );
        assert_eq!(stream_index(plan(&[("tag", "t")])), Some(Index::Tag));
        assert_eq!(
            stream_index(plan(&[("tag", "t"), ("parent", "p")])),
            Some(Index::ParentByCreated)
        );
        // Dates in the key condition when the index sorts by that date.
        match plan(&[
            ("created_from", "2026-01-01T00:00:00Z"),
            ("created_to", "2026-02-01T00:00:00Z"),
        ]) {
            Plan::Stream(scan) => {
                assert_eq!(
                    scan.bounds.from.as_deref(),
                    Some("2026-01-01T00:00:00.000Z")
                );
                assert_eq!(scan.bounds.to.as_deref(), Some("2026-02-01T00:00:00.000Z"));
                assert!(scan.descending);
                assert_eq!(scan.partition, "T#acme");
            }
            other => panic!("{other:?}"),
        }
        // No index sorts by size, nor by name tenant-wide, nor by update within a parent.
        match plan(&[
            ("order_by", "size"),
            ("tag", "t"),
            ("updated_from", "2026-01-01T00:00:00Z"),
        ]) {
            Plan::Sort(Candidates(sources)) => {
                let indexes: Vec<Vec<Index>> = sources
                    .iter()
                    .map(|scans| scans.iter().map(|s| s.index).collect())
                    .collect();
                assert_eq!(
                    indexes,
                    vec![vec![Index::Tag], vec![Index::TenantByUpdated]]
                );
            }
            other => panic!("{other:?}"),
        }
        match plan(&[("order_by", "name")]) {
            Plan::Sort(Candidates(sources)) => assert_eq!(
                sources,
                vec![vec![Scan::new(
                    "acme",
                    Index::TenantByCreated,
                    "T#acme".into(),
                    KeyBounds::default(),
                    false
                )]]
            ),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            plan(&[("parent", "p"), ("order_by", "updated_at")]),
            Plan::Sort(_)
        ));
    }

    #[test]
    fn a_limited_token_reads_only_its_parents_ranges() {
        let limited = |pairs: &[(&str, &str)]| {
            let mut q = parse(pairs).unwrap();
            q.limit_to(Some(&["case-1".to_string(), "case-2".to_string()]));
            q
        };
        let partitions =
            |scans: &[Scan]| -> Vec<String> { scans.iter().map(|s| s.partition.clone()).collect() };
        let expected = vec![
            keys::parent_gsi_pk("acme", ListingArea::Live, Some("case-1")),
            keys::parent_gsi_pk("acme", ListingArea::Live, Some("case-2")),
        ];
        // The order of an index: merged. With a tag, and by name, too: never the tag's or the
        // tenant's ranges.
        for (pairs, index) in [
            (vec![], Index::ParentByCreated),
            (vec![("tag", "t")], Index::ParentByCreated),
            (vec![("order_by", "-name")], Index::ParentByName),
        ] {
            match limited(&pairs).plan("acme") {
                Plan::Merge(scans) => {
                    assert_eq!(partitions(&scans), expected, "{pairs:?}");
                    assert!(scans.iter().all(|s| s.index == index), "{pairs:?}");
                }
                other => panic!("{pairs:?}: {other:?}"),
            }
        }
        // No index has the order: all parents gathered, and so for counts.
        for q in [
            limited(&[("order_by", "size")]),
            limited(&[
                ("count_only", "true"),
                ("updated_from", "2026-01-01T00:00:00Z"),
            ]),
        ] {
            let Candidates(sources) = q.candidate_scans("acme");
            assert_eq!(sources.len(), 1, "one source: every parent is needed");
            assert_eq!(partitions(&sources[0]), expected);
        }
        // One of its parents: that parent's range as usual; another parent: nothing to read.
        let one = limited(&[("parent", "case-2")]);
        assert!(matches!(one.plan("acme"), Plan::Stream(ref s) if s.partition == expected[1]));
        assert!(!one.matches_nothing());
        assert!(limited(&[("parent", "case-3")]).matches_nothing());
        // Files elsewhere never match, and cursors are bound to the parents.
        let mut elsewhere = file(1, "a");
        elsewhere.parent = Some("case-3".into());
        assert!(!limited(&[]).matches(&elsewhere));
        assert!(limited(&[]).matches(&file(1, "a")), "case-1 is one of them");
        assert_ne!(
            limited(&[]).fingerprint(),
            parse(&[]).unwrap().fingerprint()
        );
    }

    #[test]
    fn trashed_and_live_files_are_read_from_their_own_partitions() {
        let partitions_of = |pairs: &[(&str, &str)]| -> Vec<String> {
            match parse(pairs).unwrap().plan("acme") {
                Plan::Stream(scan) => vec![scan.partition],
                Plan::Merge(scans) => scans.into_iter().map(|s| s.partition).collect(),
                Plan::Sort(Candidates(sources)) => {
                    sources.into_iter().flatten().map(|s| s.partition).collect()
                }
            }
        };
        assert_eq!(partitions_of(&[]), vec!["T#acme"]);
        assert_eq!(partitions_of(&[("trashed", "true")]), vec!["T#acme#TRASH"]);
        assert_eq!(
            partitions_of(&[("trashed", "all")]),
            vec!["T#acme", "T#acme#TRASH"],
            "both areas, merged in the order"
        );
        assert_eq!(
            partitions_of(&[("trashed", "true"), ("parent", "p"), ("order_by", "name")]),
            vec!["T#acme#TRASH#P#p"]
        );
        assert_eq!(
            partitions_of(&[("trashed", "true"), ("tag", "t")]),
            vec!["T#acme#TRASH#TAG#t"]
        );
        // Sorted in memory: every source holds both areas' ranges when both are asked for.
        let Plan::Sort(Candidates(sources)) =
            parse(&[("trashed", "all"), ("order_by", "size"), ("tag", "t")])
                .unwrap()
                .plan("acme")
        else {
            panic!("size is sorted in memory")
        };
        let source_partitions: Vec<Vec<&str>> = sources
            .iter()
            .map(|scans| scans.iter().map(|s| s.partition.as_str()).collect())
            .collect();
        assert_eq!(
            source_partitions,
            vec![vec!["T#acme#TAG#t", "T#acme#TRASH#TAG#t"]]
        );
        // A limited token: each of its parents in each area.
        let mut limited = parse(&[("trashed", "all")]).unwrap();
        limited.limit_to(Some(&["a".to_string(), "b".to_string()]));
        let Plan::Merge(scans) = limited.plan("acme") else {
            panic!()
        };
        let merged: Vec<&str> = scans.iter().map(|s| s.partition.as_str()).collect();
        assert_eq!(
            merged,
            vec![
                "T#acme#P#a",
                "T#acme#TRASH#P#a",
                "T#acme#P#b",
                "T#acme#TRASH#P#b"
            ]
        );
        // Reading only trashed files is no longer a filter that makes reads selective.
        let trashed = parse(&[("trashed", "true")]).unwrap();
        let Plan::Stream(scan) = trashed.plan("acme") else {
            panic!()
        };
        assert!(!trashed.is_selective_on(&scan));
    }

    #[test]
    fn a_gather_holds_at_most_limit_plus_one_files_and_counts_every_match() {
        let q = parse(&[("order_by", "-size"), ("limit", "5")]).unwrap();
        let mut gather = Gather::page(&q, None);
        for n in 0..900 {
            let mut f = file(n, "x");
            f.size = (n * 7919) % 2_003;
            gather.offer(Some(f));
            assert!(gather.best.len() <= 6);
        }
        assert_eq!(gather.matched(), 900);
        let page = gather.into_page();
        let sizes: Vec<u64> = page.items.iter().map(|f| f.size).collect();
        let mut all: Vec<u64> = (0..900).map(|n| (n * 7919) % 2_003).collect();
        all.sort_unstable_by(|a, b| b.cmp(a));
        assert_eq!(sizes, all[..5].to_vec());
        assert!(page.next.is_some());
        // A count keeps no file at all; trashed files are not counted by default.
        let counting = parse(&[("count_only", "true")]).unwrap();
        let mut count = Gather::count(&counting);
        for n in 0..100 {
            let mut f = file(n, "x");
            if n % 4 == 0 {
                f.trashed_at = Some(f.created_at);
            }
            count.offer(Some(f));
        }
        count.offer(None);
        assert!(count.best.is_empty());
        assert_eq!(count.matched(), 75);
    }

    #[test]
    fn a_page_ends_before_its_byte_budget_and_continues_after_its_last_item() {
        let q = parse(&[("limit", "4")]).unwrap();
        let files: Vec<FileRecord> = (0..4).map(|n| file(10 - n, "x")).collect();
        let page = |next: Option<Position>| Page {
            items: files.clone(),
            next,
        };
        let later = Some(Position::of(OrderField::CreatedAt, &file(1, "x")));
        // Everything fits: unchanged.
        let mut whole = page(later.clone());
        assert_eq!(whole.keep_within_bytes(q.order.field, &[10; 4], 40), 4);
        assert_eq!(whole, page(later.clone()));
        // Two fit: the next page starts after the second, even where this was the last page.
        for next in [later.clone(), None] {
            let mut cut = page(next);
            assert_eq!(cut.keep_within_bytes(q.order.field, &[400; 4], 1000), 2);
            assert_eq!(cut.items, files[..2].to_vec());
            assert_eq!(
                cut.next,
                Some(Position::of(OrderField::CreatedAt, &files[1]))
            );
        }
        // Not even one fits: one is sent anyway, so a walk always moves on.
        let mut one = page(None);
        assert_eq!(one.keep_within_bytes(q.order.field, &[5000; 4], 1000), 1);
        assert_eq!(
            one.next,
            Some(Position::of(OrderField::CreatedAt, &files[0]))
        );
    }

    #[test]
    fn merged_pages_keep_the_order_and_continue_after_the_last_item() {
        let q = parse(&[("limit", "3"), ("order_by", "name")]).unwrap();
        let files: Vec<FileRecord> = ["d", "a", "c", "b", "e"]
            .iter()
            .enumerate()
            .map(|(n, name)| file(n as u64, name))
            .collect();
        let page = q.merge_pages(files.clone(), false);
        let names: Vec<&str> = page.items.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, vec!["a", "b", "c"]);
        assert_eq!(page.next, Some(Position::of(OrderField::Name, &files[2])));
        // Exactly `limit` read and a scan has more: a next page from the last one.
        let page = q.merge_pages(files[..3].to_vec(), true);
        assert_eq!(page.items.len(), 3);
        assert!(page.next.is_some());
        // Fewer, and nothing more: the last page.
        assert_eq!(q.merge_pages(files[..2].to_vec(), false).next, None);
        assert_eq!(q.merge_pages(files[..3].to_vec(), false).next, None);
    }

    #[test]
    fn in_memory_pages_are_keyset_and_cover_everything_once() {
        let files: Vec<FileRecord> = (0..23)
            .map(|n| file(n, ["b", "A", "c"][n as usize % 3]))
            .collect();
        for order in [
            "name",
            "-name",
            "size",
            "-size",
            "updated_at",
            "-created_at",
        ] {
            let mut q = parse(&[("order_by", order), ("limit", "5")]).unwrap();
            q.parent = Some("case-1".into());
            let mut seen = Vec::new();
            let mut after = None;
            loop {
                let page = gathered(&q, &files, after.as_ref());
                assert!(page.items.len() == 5 || page.next.is_none());
                seen.extend(page.items.iter().map(|f| Position::of(q.order.field, f)));
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
            assert_eq!(seen.len(), files.len(), "{order}");
            assert!(
                seen.windows(2)
                    .all(|w| q.order.compare(&w[0], &w[1]) == Ordering::Less),
                "{order}"
            );
        }
    }

    #[test]
    fn name_order_is_case_insensitive_with_id_ties() {
        let q = parse(&[("order_by", "name")]).unwrap();
        let page = gathered(&q, &[file(2, "b"), file(1, "B"), file(3, "a")], None);
        let ids: Vec<&str> = page.items.iter().map(|f| &f.id[30..]).collect();
        assert_eq!(ids, vec!["03", "01", "02"]);
    }

    #[test]
    fn a_page_fill_stops_at_limit_plus_one_and_reports_the_last_returned_position() {
        let q = parse(&[("limit", "2")]).unwrap();
        let scan = match q.plan("acme") {
            Plan::Stream(scan) => scan,
            other => panic!("{other:?}"),
        };
        let mut fill = PageFill::new(&q, &scan);
        assert_eq!(fill.next_chunk(), 5);
        assert!(!fill.offer(Some(file(3, "x"))));
        assert!(!fill.offer(None));
        assert!(!fill.offer(Some(file(2, "x"))));
        assert!(fill.offer(Some(file(1, "x"))));
        let page = fill.finish(false).unwrap();
        assert_eq!(page.items.len(), 2);
        assert_eq!(
            page.next,
            Some(Position::of(OrderField::CreatedAt, &file(2, "x")))
        );

        let mut fill = PageFill::new(&q, &scan);
        fill.offer(Some(file(3, "x")));
        assert_eq!(fill.finish(true).unwrap().next, None);

        let mut fill = PageFill::new(&q, &scan);
        for _ in 0..MAX_ITEMS_READ {
            fill.offer(None);
        }
        assert_eq!(fill.budget_left(), 0);
        assert_eq!(fill.finish(false).unwrap_err().code(), "query_too_broad");
    }

    #[test]
    fn a_set_of_exactly_the_budget_is_read_whole_and_one_more_is_too_broad() {
        let mut budget = ReadBudget::new(10);
        assert_eq!(budget.next_limit(1000), 10);
        budget.spend(10).unwrap();
        // Spent, but a LastEvaluatedKey came: one more item is asked for, to see whether any.
        assert_eq!(budget.next_limit(1000), 1);
        budget.spend(0).unwrap();
        assert_eq!(
            budget.spend(1).unwrap_err().code(),
            "query_too_broad",
            "an 11th item"
        );

        let q = parse(&[("limit", "5")]).unwrap();
        let Plan::Stream(scan) = q.plan("acme") else {
            panic!()
        };
        let mut fill = PageFill::with_budget(&q, &scan, 3);
        for _ in 0..3 {
            fill.offer(None);
        }
        assert!(!fill.is_over_budget(), "exactly the budget: read on");
        assert_eq!(fill.next_chunk(), 1, "one more, to see whether any");
        fill.offer(None);
        assert!(fill.is_over_budget());
    }

    #[test]
    fn selective_queries_read_bigger_chunks_growing_within_the_budget() {
        let q = parse(&[("q", "x"), ("limit", "100")]).unwrap();
        let Plan::Stream(scan) = q.plan("acme") else {
            panic!()
        };
        let mut fill = PageFill::new(&q, &scan);
        assert_eq!(fill.next_chunk(), 404);
        assert_eq!(fill.next_chunk(), 808);
        assert_eq!(fill.next_chunk(), MAX_CHUNK);
    }

    #[test]
    fn cursors_round_trip_and_refuse_tampering_other_tenants_and_other_queries() {
        let key = b"0123456789abcdef0123456789abcdef";
        let q = parse(&[("tag", "legal")]).unwrap();
        let fp = q.fingerprint();
        let position = Position {
            value: "résumé \u{1} x".into(),
            id: "0".repeat(32),
        };
        let cursor = encode_cursor(key, "acme", &fp, &position);
        assert_eq!(decode_cursor(key, "acme", &fp, &cursor).unwrap(), position);

        let err = |c: &str, tenant: &str, fp: &[u8; 32]| {
            decode_cursor(key, tenant, fp, c).unwrap_err().code()
        };
        assert_eq!(err(&cursor, "globex", &fp), "invalid_cursor");
        let other = parse(&[("tag", "legal"), ("order_by", "created_at")]).unwrap();
        assert_eq!(err(&cursor, "acme", &other.fingerprint()), "invalid_cursor");
        assert_eq!(
            decode_cursor(b"another key of at least 32 bytes!!", "acme", &fp, &cursor)
                .unwrap_err()
                .code(),
            "invalid_cursor"
        );
        // Every single-character change is caught.
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        for i in 0..cursor.len() {
            let original = cursor.as_bytes()[i] as char;
            let replacement = alphabet.chars().find(|c| *c != original).unwrap();
            let mut tampered = cursor.clone();
            tampered.replace_range(i..=i, &replacement.to_string());
            assert!(decode_cursor(key, "acme", &fp, &tampered).is_err(), "{i}");
        }
        for junk in ["", "%%%", "AAAA", &cursor[..cursor.len() - 1]] {
            assert_eq!(err(junk, "acme", &fp), "invalid_cursor");
        }
    }

    #[test]
    fn include_takes_thumbnails_only_and_leaves_the_fingerprint_alone() {
        let with = parse(&[("include", "thumbnails")]).unwrap();
        assert!(with.include_thumbnails);
        assert!(!parse(&[]).unwrap().include_thumbnails);
        assert_eq!(with.fingerprint(), parse(&[]).unwrap().fingerprint());
        for bad in ["", "thumbnail", "thumbnails,owner"] {
            let err = parse(&[("include", bad)]).unwrap_err();
            assert_eq!(err.code(), "invalid_parameter", "{bad:?}");
        }
    }

    #[test]
    fn fingerprints_ignore_limit_and_cursor_and_follow_normalization() {
        let a = parse(&[("q", "Report"), ("limit", "5")]).unwrap();
        let b = parse(&[("q", "report"), ("order_by", "-created_at")]).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        let c = parse(&[("q", "report"), ("trashed", "all")]).unwrap();
        assert_ne!(a.fingerprint(), c.fingerprint());
    }
}
