//! Rating benchmark (run outside CI): one month of hourly usage records for 100,000
//! resources (72 million records) rated against a realistic price list with a price change
//! mid-month, on as many threads as there are cores. Prints records/s and, beside it, the
//! machine's memory-scan bandwidth measured over the same bytes in the same run.
//!
//! Run: `cargo run --release -p zy-rating --example rate_month`
//! (`RESOURCES=…` to change the count; the target is ≤ 10 s for 100,000.)

use std::time::Instant;
use zy_model::billing::{FlavorRate, Rate, Rates};
use zy_rating::{Interval, Line, PriceList, Snapshot, Status};

const HOURS: i64 = 720;
const CHUNK: usize = 5_000;

fn rates(vcpu: &str) -> Rates {
    Rates {
        vcpu_hour: Rate::parse(vcpu).unwrap_or_default(),
        memory_gib_hour: Rate::parse("0.0200").unwrap_or_default(),
        gpu_hour: Rate::parse("3.5000").unwrap_or_default(),
        disk_gib_month: Rate::parse("0.3000").unwrap_or_default(),
        volume_gib_month: Rate::parse("0.5000").unwrap_or_default(),
        flavors: vec![FlavorRate {
            flavor: "g.large".into(),
            per_hour: Rate::parse("1.8000").unwrap_or_default(),
        }],
        stopped_compute_permille: 100,
        discount_permille: 50,
        department_discounts: vec![],
    }
}

fn main() {
    let resources: usize = std::env::var("RESOURCES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (r1, r2) = (rates("0.0500"), rates("0.0450"));
    let list = PriceList::new(&[(0, &r1), (15 * 86_400 + 1234, &r2)]);
    let dept = list.department("dept");
    let bundle = list.flavor_id("g.large");
    const FLAVORS: [(u32, u64); 6] = [
        (1, 2048),
        (2, 4096),
        (4, 8192),
        (4, 16384),
        (8, 32768),
        (16, 65536),
    ];

    // Records are built chunk by chunk (not timed) so memory stays bounded; each chunk is
    // larger than the caches, so rating and the scan both read from memory.
    let build = |chunk: usize, buf: &mut Vec<Interval>| {
        buf.clear();
        for r in 0..CHUNK {
            let n = chunk * CHUNK + r;
            let (vcpus, memory_mib) = FLAVORS[n % FLAVORS.len()];
            let volume = n % 5 == 4;
            let snap = Snapshot {
                status: if volume {
                    Status::Allocated
                } else {
                    Status::Running
                },
                volume,
                vcpus,
                memory_mib,
                disk_gib: 40 + (n % 7) as u64 * 10,
                gpus: u32::from(n.is_multiple_of(50)),
                flavor: if n.is_multiple_of(11) { bundle } else { None },
            };
            for h in 0..HOURS {
                let mut s = snap;
                if !volume && (h + n as i64) % 24 >= 22 {
                    s.status = Status::Stopped;
                }
                buf.push(Interval {
                    start: h * 3600,
                    end: h * 3600 + 3600,
                    snapshot: s,
                });
            }
        }
    };

    let chunks = resources.div_ceil(CHUNK);
    let record_bytes = std::mem::size_of::<Interval>();
    let mut rating_secs = 0.0f64;
    let mut scan_secs = 0.0f64;
    let mut total_fen: i64 = 0;
    let mut records: u64 = 0;
    let mut bufs: Vec<Vec<Interval>> = (0..threads)
        .map(|_| Vec::with_capacity(CHUNK * HOURS as usize))
        .collect();
    let mut chunk = 0;
    while chunk < chunks {
        let batch = threads.min(chunks - chunk);
        for (i, buf) in bufs.iter_mut().take(batch).enumerate() {
            build(chunk + i, buf);
        }
        // Rating: one resource = one line of 720 hourly records.
        let t = Instant::now();
        let fen: i64 = std::thread::scope(|s| {
            let hs: Vec<_> = bufs
                .iter()
                .take(batch)
                .map(|buf| {
                    let (list, dept) = (&list, &dept);
                    s.spawn(move || {
                        let mut sum = 0i64;
                        for res in buf.chunks(HOURS as usize) {
                            let mut line = Line::default();
                            for iv in res {
                                line.add(list, dept, iv);
                            }
                            sum += line.amount().0;
                        }
                        sum
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap_or(0)).sum()
        });
        rating_secs += t.elapsed().as_secs_f64();
        total_fen += fen;
        records += bufs.iter().take(batch).map(|b| b.len() as u64).sum::<u64>();
        // The same bytes scanned by the same threads: the physical limit for this data.
        let t = Instant::now();
        let x: u64 = std::thread::scope(|s| {
            let hs: Vec<_> = bufs
                .iter()
                .take(batch)
                .map(|buf| {
                    s.spawn(move || {
                        let mut acc = 0u64;
                        for iv in buf {
                            acc = acc.wrapping_add(iv.start as u64 ^ iv.snapshot.disk_gib);
                        }
                        acc
                    })
                })
                .collect();
            hs.into_iter()
                .map(|h| h.join().unwrap_or(0))
                .fold(0, u64::wrapping_add)
        });
        scan_secs += t.elapsed().as_secs_f64();
        std::hint::black_box(x);
        chunk += batch;
    }
    let bytes = records as f64 * record_bytes as f64;
    println!("resources        {resources}");
    println!(
        "records          {records} ({record_bytes} bytes each, {:.2} GB)",
        bytes / 1e9
    );
    println!("threads          {threads}");
    println!(
        "rating           {rating_secs:.2} s  ({:.1} M records/s, {:.2} GB/s)",
        records as f64 / rating_secs / 1e6,
        bytes / rating_secs / 1e9
    );
    println!(
        "memory scan      {scan_secs:.2} s  ({:.2} GB/s over the same bytes)",
        bytes / scan_secs / 1e9
    );
    println!(
        "rating / scan    {:.1} %  of the scan's speed",
        scan_secs / rating_secs * 100.0
    );
    println!("month total      ¥{}", zy_model::Money(total_fen).yuan());
    if resources >= 100_000 && rating_secs > 10.0 {
        eprintln!("target missed: rating took {rating_secs:.2} s > 10 s");
        std::process::exit(1);
    }
}
