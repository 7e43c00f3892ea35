//! What the server asks for: one instance's flavor plus where it may go (zone, providers,
//! group), and how a zone prefers to place (pack or spread). Kept apart from the host side
//! because the server builds these from an API request, not from host rows.

use crate::host::Usage;

/// A server group (anti-affinity or affinity) as the server numbers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupId(pub u64);

/// How an instance relates to the other members of its group. The server keeps a group's
/// policy fixed for its lifetime; the scheduler trusts the policy carried by each request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupPolicy {
    /// Every member on the host the first member landed on.
    Affinity,
    /// No two members on one host.
    AntiAffinity,
}

/// One instance to place.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    pub vcpus: u32,
    pub memory_mib: u64,
    pub disk_gib: u64,
    pub gpus: u32,
    /// `None`: any zone.
    pub zone: Option<u32>,
    /// Allowed providers, e.g. those holding the image or the user's choice. `None`: any.
    pub providers: Option<Vec<u32>>,
    pub group: Option<(GroupId, GroupPolicy)>,
}

impl Request {
    /// The resources the instance consumes on its host.
    pub fn demand(&self) -> Usage {
        Usage {
            vcpus: self.vcpus,
            memory_mib: self.memory_mib,
            disk_gib: self.disk_gib,
            gpus: self.gpus,
        }
    }
}

/// How a zone chooses among hosts that fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Best fit: the host that is busiest after placing, so fewer hosts run (and the rest
    /// can be powered down or left for large flavors). Empty hosts are used last.
    #[default]
    Pack,
    /// The least busy host, for zones where noisy neighbours matter more than utilisation.
    Spread,
}
