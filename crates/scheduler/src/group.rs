//! Group membership: which hosts hold members of each (anti-)affinity group, and how many.
//! Counts rather than sets because an affinity group stacks many members on one host and a
//! host stops being a member only when the last of them is released.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::host::HostId;
use crate::request::GroupId;

/// The hosts holding members of one group.
#[derive(Debug, Clone, Default)]
pub(crate) struct Members {
    hosts: HashMap<HostId, u32, IdHash>,
}

impl Members {
    pub(crate) fn contains(&self, host: HostId) -> bool {
        self.hosts.contains_key(&host)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (HostId, u32)> + '_ {
        self.hosts.iter().map(|(&host, &count)| (host, count))
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Groups {
    groups: HashMap<GroupId, Members, IdHash>,
}

impl Groups {
    pub(crate) fn get(&self, group: GroupId) -> Option<&Members> {
        self.groups.get(&group)
    }

    pub(crate) fn add(&mut self, group: GroupId, host: HostId) {
        let count = self
            .groups
            .entry(group)
            .or_default()
            .hosts
            .entry(host)
            .or_insert(0);
        *count = count.saturating_add(1);
    }

    /// Forgets one member on `host`; false when there was none to forget, so the caller
    /// knows not to adjust the host's own count either.
    pub(crate) fn remove(&mut self, group: GroupId, host: HostId) -> bool {
        let Some(members) = self.groups.get_mut(&group) else {
            return false;
        };
        let Some(count) = members.hosts.get_mut(&host) else {
            return false;
        };
        *count -= 1;
        if *count == 0 {
            members.hosts.remove(&host);
            // Empty groups would otherwise accumulate for every group ever deleted.
            if members.hosts.is_empty() {
                self.groups.remove(&group);
            }
        }
        true
    }
}

/// Keys here are small integers the scheduler itself hands out, so there is no hash
/// flooding to defend against and SipHash would only cost time in the placement loop.
pub(crate) type IdHash = BuildHasherDefault<IdHasher>;

#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u32(&mut self, value: u32) {
        self.write_u64(u64::from(value));
    }

    fn write_usize(&mut self, value: usize) {
        self.write_u64(value as u64);
    }

    fn write_u64(&mut self, value: u64) {
        // FxHash's step: a rotate and an odd multiplier spread consecutive ids over buckets.
        self.0 = (self.0.rotate_left(5) ^ value).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_leaves_a_group_with_its_last_member() {
        let mut groups = Groups::default();
        groups.add(GroupId(1), HostId(3));
        groups.add(GroupId(1), HostId(3));
        assert!(groups.remove(GroupId(1), HostId(3)));
        assert!(groups
            .get(GroupId(1))
            .is_some_and(|m| m.contains(HostId(3))));
        assert!(groups.remove(GroupId(1), HostId(3)));
        assert!(groups.get(GroupId(1)).is_none());
    }

    #[test]
    fn removing_an_unknown_member_changes_nothing() {
        let mut groups = Groups::default();
        assert!(!groups.remove(GroupId(1), HostId(0)));
        groups.add(GroupId(1), HostId(0));
        assert!(!groups.remove(GroupId(1), HostId(1)));
        assert!(!groups.remove(GroupId(2), HostId(0)));
        assert!(groups
            .get(GroupId(1))
            .is_some_and(|m| m.contains(HostId(0))));
    }
}
