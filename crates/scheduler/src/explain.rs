//! Why the scheduler said no, in a shape the server can turn into a user-facing error:
//! every host is charged to the first filter that rejected it, so the counts add up to
//! the number of hosts and the server can say which constraint ran out ("the anti-affinity
//! group needs more hosts than the zone has") rather than a bare "no valid host".

use crate::filter::Filter;
use crate::host::HostId;

/// Hosts rejected per filter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rejections {
    pub state: u32,
    pub zone: u32,
    pub provider: u32,
    pub affinity: u32,
    pub anti_affinity: u32,
    pub capacity_vcpu: u32,
    pub capacity_memory: u32,
    pub capacity_disk: u32,
    pub gpu: u32,
}

impl Rejections {
    pub fn get(&self, filter: Filter) -> u32 {
        match filter {
            Filter::State => self.state,
            Filter::Zone => self.zone,
            Filter::Provider => self.provider,
            Filter::Affinity => self.affinity,
            Filter::AntiAffinity => self.anti_affinity,
            Filter::CapacityVcpu => self.capacity_vcpu,
            Filter::CapacityMemory => self.capacity_memory,
            Filter::CapacityDisk => self.capacity_disk,
            Filter::Gpu => self.gpu,
        }
    }

    pub(crate) fn add(&mut self, filter: Filter) {
        let count = match filter {
            Filter::State => &mut self.state,
            Filter::Zone => &mut self.zone,
            Filter::Provider => &mut self.provider,
            Filter::Affinity => &mut self.affinity,
            Filter::AntiAffinity => &mut self.anti_affinity,
            Filter::CapacityVcpu => &mut self.capacity_vcpu,
            Filter::CapacityMemory => &mut self.capacity_memory,
            Filter::CapacityDisk => &mut self.capacity_disk,
            Filter::Gpu => &mut self.gpu,
        };
        *count = count.saturating_add(1);
    }

    /// Filters that rejected at least one host, in filter order.
    pub fn iter(&self) -> impl Iterator<Item = (Filter, u32)> + '_ {
        Filter::ALL
            .into_iter()
            .map(|filter| (filter, self.get(filter)))
            .filter(|&(_, count)| count > 0)
    }
}

/// No host can take the instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoValidHost {
    /// Hosts the scheduler knows, in any state.
    pub hosts: u32,
    pub rejected: Rejections,
}

impl NoValidHost {
    /// The filter that rejected the most hosts (the earlier filter on a tie); `None` when
    /// there are no hosts at all.
    pub fn main_reason(&self) -> Option<Filter> {
        self.rejected
            .iter()
            .fold(
                None,
                |best: Option<(Filter, u32)>, (filter, count)| match best {
                    Some((_, most)) if most >= count => best,
                    _ => Some((filter, count)),
                },
            )
            .map(|(filter, _)| filter)
    }
}

impl std::fmt::Display for NoValidHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.hosts == 0 {
            return f.write_str("no valid host: there are no hosts");
        }
        write!(f, "no valid host among {} hosts", self.hosts)?;
        let mut separator = ": ";
        for (filter, count) in self.rejected.iter() {
            let why = match filter {
                Filter::State => "not enabled",
                Filter::Zone => "in another zone",
                Filter::Provider => "from a provider not allowed",
                Filter::Affinity => "not holding the affinity group",
                Filter::AntiAffinity => "already holding a member of the anti-affinity group",
                Filter::CapacityVcpu => "short of vCPUs",
                Filter::CapacityMemory => "short of memory",
                Filter::CapacityDisk => "short of disk",
                Filter::Gpu => "short of GPUs",
            };
            write!(f, "{separator}{count} {why}")?;
            separator = ", ";
        }
        Ok(())
    }
}

impl std::error::Error for NoValidHost {}

/// A host id the scheduler has not been given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownHost(pub HostId);

impl std::fmt::Display for UnknownHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unknown {}", self.0)
    }
}

impl std::error::Error for UnknownHost {}

/// Why a claim was refused; nothing was consumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimError {
    UnknownHost(HostId),
    /// The host no longer passes `filter`, e.g. another claim took the room first or it
    /// went into maintenance since the decision.
    Rejected {
        host: HostId,
        filter: Filter,
    },
}

impl std::fmt::Display for ClaimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClaimError::UnknownHost(host) => write!(f, "unknown {host}"),
            ClaimError::Rejected { host, filter } => {
                write!(f, "{host} rejected the claim by the {filter} filter")
            }
        }
    }
}

impl std::error::Error for ClaimError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn main_reason_is_the_filter_that_rejected_most_hosts() {
        let mut rejected = Rejections::default();
        rejected.add(Filter::Zone);
        rejected.add(Filter::AntiAffinity);
        rejected.add(Filter::AntiAffinity);
        rejected.add(Filter::CapacityMemory);
        rejected.add(Filter::CapacityMemory);
        let refusal = NoValidHost { hosts: 5, rejected };
        assert_eq!(refusal.main_reason(), Some(Filter::AntiAffinity));
        assert_eq!(
            refusal.to_string(),
            "no valid host among 5 hosts: 1 in another zone, 2 already holding a member of \
             the anti-affinity group, 2 short of memory"
        );
    }

    #[test]
    fn no_hosts_is_said_plainly() {
        let refusal = NoValidHost {
            hosts: 0,
            rejected: Rejections::default(),
        };
        assert_eq!(refusal.main_reason(), None);
        assert_eq!(refusal.to_string(), "no valid host: there are no hosts");
    }
}
