//! What a segment is for, written into its memfd's name so `shmsock ls` can find it
//! among a process's fds (see `crate::inspect`).

/// What an owned segment is for. Each segment's memfd is named
/// `shmsock:<role>:<rendezvous socket path>`, which is how `shmsock ls` finds segments and
/// tells the roles apart (see [`crate::inspect`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum SegmentRole {
    /// The accepting side of a `Conn` (`Listener::accept`).
    Listener,
    /// The connecting side of a `Conn` (`Conn::connect`), also a writer of an `Inbox`.
    Connector,
    /// A `Publisher`: one segment holds the broadcast ring read by every subscriber.
    Publisher,
    /// A `Subscriber`: publishes its read position in the publisher's ring.
    Subscriber,
    /// An `Inbox`'s side of one writer's connection.
    Inbox,
}

impl SegmentRole {
    /// Every role, in the order `shmsock ls` lists them.
    pub const ALL: [SegmentRole; 5] = [
        SegmentRole::Listener,
        SegmentRole::Publisher,
        SegmentRole::Inbox,
        SegmentRole::Connector,
        SegmentRole::Subscriber,
    ];

    /// The word used in memfd names, lock files and `shmsock ls`.
    pub fn as_str(self) -> &'static str {
        match self {
            SegmentRole::Listener => "listener",
            SegmentRole::Connector => "connector",
            SegmentRole::Publisher => "publisher",
            SegmentRole::Subscriber => "subscriber",
            SegmentRole::Inbox => "inbox",
        }
    }

    /// The role named `word` (as written by [`SegmentRole::as_str`]).
    pub fn from_word(word: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == word)
    }
}

impl std::fmt::Display for SegmentRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Prefix of every labelled segment's memfd name.
pub(crate) const MEMFD_PREFIX: &str = "shmsock:";
/// Longest memfd name the kernel accepts (`NAME_MAX` minus the `memfd:` prefix).
pub(crate) const MEMFD_NAME_MAX_BYTES: usize = 249;

/// The memfd name of a segment playing `role` on `endpoint` (`shm://NAME`):
/// `shmsock:<role>:<rendezvous socket path>`, cut at a character boundary to the kernel's
/// limit. Falls back to the endpoint if the rendezvous directory cannot be named.
pub(crate) fn memfd_name(role: SegmentRole, endpoint: &str) -> String {
    let name = endpoint.strip_prefix("shm://").unwrap_or(endpoint);
    let place = super::runtime_dir::socket_path_of(name)
        .map_or_else(|| endpoint.to_owned(), |p| p.display().to_string());
    let mut label = format!("{MEMFD_PREFIX}{role}:{place}");
    if label.len() > MEMFD_NAME_MAX_BYTES {
        let mut cut = MEMFD_NAME_MAX_BYTES;
        while !label.is_char_boundary(cut) {
            cut -= 1;
        }
        label.truncate(cut);
    }
    // memfd_create refuses names with NUL bytes; a path cannot contain one, but be sure.
    label.replace('\0', "")
}
