//! Thumbnail benchmark: ours against `vipsthumbnail` and Pillow, side by side, one process per run.
//!
//! Run through `scripts/bench thumbnails` (installs the anchors, makes the images). Directly:
//!
//! ```sh
//! cargo bench -p process-upload --bench thumbnails -- run --images .local/bench-images [--runs 7]
//! cargo bench -p process-upload --bench thumbnails -- gen-quick DIR   # small images for --quick
//! ```
//!
//! Every measured run is a fresh process (this binary in `once` mode, `vipsthumbnail`, or Python),
//! so wall time includes start-up and file reading, as it does for the anchors. Methods alternate
//! run by run so background load hits them alike. Peak memory is the child's `ru_maxrss` (wait4).
//! PSNR compares each output with a Lanczos3 resize of the full-resolution decode (oriented), made
//! at the output's own size.
//!
//! Linux reports a child's peak RSS as at least the RSS of the process that spawned it (the old
//! address space at exec counts), so runs are spawned by a fresh copy of this binary (`measure`
//! mode, about 3 MB) rather than by the orchestrator, which holds the reference images.
//!
//! The library module is compiled into this binary by path, so the bench does not link the Lambda
//! function's AWS SDK (a fat-LTO link of the whole SDK takes minutes).

use fast_image_resize as fir;
use image::{DynamicImage, ImageDecoder, ImageFormat, RgbImage};
#[allow(dead_code)]
#[path = "../src/thumbnails.rs"]
mod thumbnails;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use thumbnails::{THUMBNAIL_SIZES, ThumbnailLimits, make_thumbnails, make_thumbnails_tuned};

/// Pillow anchor: `thumbnail()` (which drafts JPEGs at >= 2x, like vips), then the EXIF transpose.
const PILLOW_SCRIPT: &str = r#"
import sys
from PIL import Image, ImageOps
src, out_prefix, sizes = sys.argv[1], sys.argv[2], sorted((int(s) for s in sys.argv[3].split(",")), reverse=True)
im = Image.open(src)
im.thumbnail((sizes[0], sizes[0]), Image.LANCZOS)
im = ImageOps.exif_transpose(im).convert("RGB")
for s in sizes:
    im.thumbnail((s, s), Image.LANCZOS)
    im.save(f"{out_prefix}_{s}.jpg", quality=80)
"#;

struct Args {
    images: PathBuf,
    runs: usize,
    quick: bool,
    work: PathBuf,
    vips: Option<String>,
    python: Option<String>,
    out: Option<PathBuf>,
}

fn main() {
    // `cargo bench` appends `--bench`: ignore it.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let result = match args.first().map(String::as_str) {
        Some("once") if args.len() == 4 => once(&args[1], Path::new(&args[2]), Path::new(&args[3])),
        Some("gen-quick") if args.len() == 2 => gen_quick(Path::new(&args[1])),
        Some("measure") if args.len() >= 3 => measure_child(&args[1], &args[2..]),
        Some("path") => std::env::current_exe()
            .map(|p| println!("{}", p.display()))
            .map_err(|e| e.to_string()),
        Some("run") => parse_run_args(&args[1..]).and_then(|a| run(&a)),
        None => {
            println!("{}", usage());
            Ok(())
        }
        _ => Err(usage()),
    };
    if let Err(e) = result {
        eprintln!("thumbnails bench: {e}");
        std::process::exit(2);
    }
}

fn usage() -> String {
    "usage: thumbnails run --images DIR [--runs N] [--quick] [--work DIR] [--vips PATH] \
     [--python PATH] [--out FILE.md]\n       thumbnails gen-quick DIR\n       \
     thumbnails once METHOD INPUT OUT_PREFIX"
        .to_owned()
}

fn parse_run_args(args: &[String]) -> Result<Args, String> {
    let mut a = Args {
        images: PathBuf::from(".local/bench-images"),
        runs: 7,
        quick: false,
        work: std::env::temp_dir().join("thumbnails-bench"),
        vips: None,
        python: None,
        out: None,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().cloned().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--images" => a.images = value()?.into(),
            "--runs" => a.runs = value()?.parse().map_err(|e| format!("--runs: {e}"))?,
            "--quick" => a.quick = true,
            "--work" => a.work = value()?.into(),
            "--vips" => a.vips = Some(value()?),
            "--python" => a.python = Some(value()?),
            "--out" => a.out = Some(value()?.into()),
            other => return Err(format!("unknown flag {other}\n{}", usage())),
        }
    }
    a.runs = a.runs.max(1);
    Ok(a)
}

/// One measured run of our library, in its own process: read, thumbnail, write.
fn once(method: &str, input: &Path, out_prefix: &Path) -> Result<(), String> {
    if method == "startup" {
        return Ok(());
    }
    let bytes = std::fs::read(input).map_err(|e| format!("{}: {e}", input.display()))?;
    let limits = ThumbnailLimits::default();
    let made = match method {
        "ours" => make_thumbnails(&bytes, &THUMBNAIL_SIZES, &limits),
        "ours-256" => make_thumbnails(&bytes, &[256], &limits),
        "ours-vips-rule" => make_thumbnails_tuned(&bytes, &THUMBNAIL_SIZES, &limits, 2.0),
        _ => return Err(format!("unknown method {method}")),
    }
    .map_err(|e| e.to_string())?;
    for t in made {
        let path = format!("{}_{}.jpg", out_prefix.display(), t.size);
        std::fs::write(&path, &t.jpeg).map_err(|e| format!("{path}: {e}"))?;
    }
    Ok(())
}

/// A method: the commands of one measured run (run one after the other), and what they write.
struct Method {
    name: &'static str,
    /// The sizes it makes (outputs are `{prefix}_{size}.jpg`); empty for start-up floors.
    sizes: Vec<u32>,
    commands: Vec<Command>,
    prefix: PathBuf,
}

struct Image {
    label: &'static str,
    file: &'static str,
}

const IMAGES: [Image; 3] = [
    Image {
        label: "24 MP JPEG",
        file: "p24.jpg",
    },
    Image {
        label: "12 MP PNG",
        file: "p12.png",
    },
    Image {
        label: "12 MP JPEG, EXIF 6",
        file: "p12_orient6.jpg",
    },
];

fn methods(a: &Args, input: &Path, work: &Path) -> Vec<Method> {
    let me = std::env::current_exe().expect("own path");
    let mut list = Vec::new();
    let mut ours = |name: &'static str, mode: &str, sizes: Vec<u32>| {
        let prefix = work.join(mode);
        let mut c = Command::new(&me);
        c.arg("once").arg(mode).arg(input).arg(&prefix);
        list.push(Method {
            name,
            sizes,
            commands: vec![c],
            prefix,
        });
    };
    ours("ours: 64+256+1024", "ours", THUMBNAIL_SIZES.to_vec());
    ours("ours: 256 only", "ours-256", vec![256]);
    ours(
        "ours, vips' 2x shrink rule: 64+256+1024",
        "ours-vips-rule",
        THUMBNAIL_SIZES.to_vec(),
    );
    ours("ours: process start-up only", "startup", vec![]);
    if let Some(vips) = &a.vips {
        let vips_cmd = |size: u32, prefix: &Path| {
            let mut c = Command::new(vips);
            c.arg(input)
                .arg("-s")
                .arg(size.to_string())
                .arg("-o")
                .arg(format!("{}_{size}.jpg[Q=80,strip]", prefix.display()));
            c
        };
        let prefix = work.join("vips");
        list.push(Method {
            name: "vipsthumbnail: 256",
            sizes: vec![256],
            commands: vec![vips_cmd(256, &prefix)],
            prefix,
        });
        let prefix = work.join("vips3");
        list.push(Method {
            name: "vipsthumbnail: 64+256+1024 (3 runs)",
            sizes: THUMBNAIL_SIZES.to_vec(),
            commands: THUMBNAIL_SIZES
                .iter()
                .map(|&s| vips_cmd(s, &prefix))
                .collect(),
            prefix,
        });
        let mut c = Command::new(vips);
        c.arg("--vips-version");
        list.push(Method {
            name: "vipsthumbnail: process start-up only",
            sizes: vec![],
            commands: vec![c],
            prefix: work.join("vips-startup"),
        });
    }
    if let Some(python) = &a.python {
        let script = work.join("pillow_thumb.py");
        std::fs::write(&script, PILLOW_SCRIPT).expect("write Pillow script");
        for (name, mode, sizes) in [
            ("Pillow thumbnail(): 256", "pillow", vec![256]),
            (
                "Pillow thumbnail(): 64+256+1024",
                "pillow3",
                THUMBNAIL_SIZES.to_vec(),
            ),
        ] {
            let prefix = work.join(mode);
            let mut c = Command::new(python);
            let list_arg: Vec<String> = sizes.iter().map(u32::to_string).collect();
            c.arg(&script)
                .arg(input)
                .arg(&prefix)
                .arg(list_arg.join(","));
            list.push(Method {
                name,
                sizes,
                commands: vec![c],
                prefix,
            });
        }
    }
    list
}

/// Runs a command through a fresh copy of this binary (see the module docs); wall time and the
/// command's peak resident set (bytes).
fn measure(command: &Command, log: &Path) -> Result<Sample, String> {
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let output = Command::new(me)
        .arg("measure")
        .arg(log)
        .arg(command.get_program())
        .args(command.get_args())
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        let stderr = std::fs::read_to_string(log).unwrap_or_default();
        return Err(format!("{command:?} failed: {}{stderr}", text.trim()));
    }
    let mut fields = text.split_whitespace().map(str::parse::<u64>);
    match (fields.next(), fields.next(), fields.next()) {
        (Some(Ok(wall)), Some(Ok(cpu)), Some(Ok(rss))) => Ok(Sample {
            wall: Duration::from_nanos(wall),
            cpu: Duration::from_nanos(cpu),
            rss,
        }),
        _ => Err(format!("measure printed {text:?}")),
    }
}

/// One process run: wall time, CPU time (user + system) and peak resident set in bytes.
struct Sample {
    wall: Duration,
    cpu: Duration,
    rss: u64,
}

/// `measure LOG PROGRAM ARGS...`: runs the program; prints wall and CPU nanoseconds, peak RSS bytes.
fn measure_child(log: &str, command: &[String]) -> Result<(), String> {
    let mut c = Command::new(&command[0]);
    c.args(&command[1..]);
    let s = spawn_and_wait(&mut c, Path::new(log))?;
    println!("{} {} {}", s.wall.as_nanos(), s.cpu.as_nanos(), s.rss);
    Ok(())
}

fn spawn_and_wait(command: &mut Command, log: &Path) -> Result<Sample, String> {
    let err = std::fs::File::create(log).map_err(|e| e.to_string())?;
    let start = Instant::now();
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .map_err(|e| format!("{command:?}: {e}"))?;
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child (std will not wait for it again: the Child is forgotten).
    let waited = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    std::mem::forget(child);
    if waited < 0 {
        return Err(format!("wait4: {}", std::io::Error::last_os_error()));
    }
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        let stderr = std::fs::read_to_string(log).unwrap_or_default();
        return Err(format!("exit status {status}: {stderr}"));
    }
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    Ok(Sample {
        wall,
        cpu: time(usage.ru_utime) + time(usage.ru_stime),
        rss: usage.ru_maxrss as u64 * 1024,
    })
}

#[derive(Default)]
struct Row {
    walls: Vec<Duration>,
    cpus: Vec<Duration>,
    peak_rss: u64,
    bytes: HashMap<u32, u64>,
    psnr: HashMap<u32, f64>,
    error: Option<String>,
}

fn median(v: &[Duration]) -> f64 {
    let mut ms: Vec<f64> = v.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    let n = ms.len();
    if n % 2 == 1 {
        ms[n / 2]
    } else {
        (ms[n / 2 - 1] + ms[n / 2]) / 2.0
    }
}

fn p90(v: &[Duration]) -> f64 {
    let mut ms: Vec<f64> = v.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    let rank = ((0.9 * ms.len() as f64).ceil() as usize).clamp(1, ms.len());
    ms[rank - 1]
}

fn run(a: &Args) -> Result<(), String> {
    let mut report = String::new();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    writeln!(
        report,
        "Machine: {cores} cores, {cpu}; load average before the run {load}. {} run(s) per method{}, \
         methods alternating.\n",
        a.runs,
        if a.quick {
            " (quick mode: debug build, small images, no warm-up; figures mean nothing)"
        } else {
            " after one warm-up"
        }
    )
    .unwrap();
    writeln!(
        report,
        "| method | image | median ms | p90 ms | CPU ms | peak RSS MB | 256 px bytes | all bytes | PSNR 256 dB | ratio to vips 256 |"
    )
    .unwrap();
    writeln!(report, "|---|---|---|---|---|---|---|---|---|---|").unwrap();
    let mut quality = String::new();
    let mut verdicts = String::new();
    // What makes the run fail (after the report is printed): a method that did not run, or one of
    // our thumbnails missing or unlike its reference. That is what the smoke run in CI checks.
    let mut failures = Vec::new();

    for image in &IMAGES {
        let input = a.images.join(image.file);
        if !input.exists() {
            return Err(format!(
                "{} is missing: run scripts/bench (it makes the images)",
                input.display()
            ));
        }
        let work = a.work.join(image.file.replace('.', "_"));
        std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
        let methods = methods(a, &input, &work);
        let label = label(&input, image);
        let mut rows: Vec<Row> = methods.iter().map(|_| Row::default()).collect();
        let log = work.join("stderr.log");
        eprintln!("== {} ({})", label, input.display());
        for round in 0..=a.runs {
            // Round 0 warms the page cache and is not counted (skipped in quick mode).
            if round == 0 && a.quick {
                continue;
            }
            for (m, row) in methods.iter().zip(rows.iter_mut()) {
                if row.error.is_some() {
                    continue;
                }
                let (mut wall, mut cpu, mut peak) = (Duration::ZERO, Duration::ZERO, 0);
                for c in &m.commands {
                    match measure(c, &log) {
                        Ok(s) => {
                            wall += s.wall;
                            cpu += s.cpu;
                            peak = peak.max(s.rss);
                        }
                        Err(e) => {
                            eprintln!("   {}: {e}", m.name);
                            row.error = Some(e);
                            break;
                        }
                    }
                }
                if round > 0 && row.error.is_none() {
                    row.walls.push(wall);
                    row.cpus.push(cpu);
                    row.peak_rss = row.peak_rss.max(peak);
                }
            }
        }
        // Output sizes and quality, from the last run's files.
        let reference = Reference::new(&input)?;
        for (m, row) in methods.iter().zip(rows.iter_mut()) {
            if row.error.is_some() {
                continue;
            }
            for &s in &m.sizes {
                let path = format!("{}_{s}.jpg", m.prefix.display());
                let Ok(jpeg) = std::fs::read(&path) else {
                    continue;
                };
                row.bytes.insert(s, jpeg.len() as u64);
                if let Ok(psnr) = reference.psnr(&jpeg) {
                    row.psnr.insert(s, psnr);
                }
            }
        }
        for (m, row) in methods.iter().zip(&rows) {
            if let Some(e) = &row.error {
                failures.push(format!("{} on {label}: {e}", m.name));
            } else if m.name.starts_with("ours") {
                for &s in &m.sizes {
                    match row.psnr.get(&s) {
                        Some(&db) if db >= MIN_PSNR_DB => {}
                        Some(&db) => failures.push(format!(
                            "{} on {label}: the {s} px thumbnail is {db:.1} dB from its reference \
                             (at least {MIN_PSNR_DB} expected)",
                            m.name
                        )),
                        None => failures.push(format!(
                            "{} on {label}: no readable {s} px thumbnail",
                            m.name
                        )),
                    }
                }
            }
        }
        let vips_ms = methods
            .iter()
            .zip(&rows)
            .find(|(m, r)| m.name == "vipsthumbnail: 256" && r.error.is_none())
            .map(|(_, r)| median(&r.walls));
        for (m, row) in methods.iter().zip(&rows) {
            if let Some(e) = &row.error {
                writeln!(
                    report,
                    "| {} | {} | failed: {} ||||||||",
                    m.name,
                    label,
                    e.lines().next().unwrap_or("")
                )
                .unwrap();
                continue;
            }
            let med = median(&row.walls);
            let fmt_bytes = |b: Option<u64>| b.map_or("-".to_owned(), |b| b.to_string());
            let all: u64 = row.bytes.values().sum();
            writeln!(
                report,
                "| {} | {} | {:.0} | {:.0} | {:.0} | {:.1} | {} | {} | {} | {} |",
                m.name,
                label,
                med,
                p90(&row.walls),
                median(&row.cpus),
                row.peak_rss as f64 / 1e6,
                fmt_bytes(row.bytes.get(&256).copied()),
                if row.bytes.len() > 1 {
                    all.to_string()
                } else {
                    "-".to_owned()
                },
                row.psnr
                    .get(&256)
                    .map_or("-".to_owned(), |p| format!("{p:.2}")),
                vips_ms.map_or("-".to_owned(), |v| format!("{:.2}", med / v)),
            )
            .unwrap();
        }

        // Per-size quality: ours against vips (three runs) and Pillow.
        let find = |name: &str| {
            methods
                .iter()
                .zip(&rows)
                .find(|(m, r)| m.name == name && r.error.is_none())
                .map(|(_, r)| r)
        };
        let ours = find("ours: 64+256+1024");
        let vips3 = find("vipsthumbnail: 64+256+1024 (3 runs)");
        let pillow3 = find("Pillow thumbnail(): 64+256+1024");
        for s in THUMBNAIL_SIZES {
            let b = |r: Option<&Row>| r.and_then(|r| r.bytes.get(&s).copied());
            let p = |r: Option<&Row>| {
                r.and_then(|r| r.psnr.get(&s))
                    .map_or("-".to_owned(), |p| format!("{p:.2}"))
            };
            let ratio = match (b(ours), b(vips3)) {
                (Some(o), Some(v)) => format!("{:.2}", o as f64 / v as f64),
                _ => "-".to_owned(),
            };
            writeln!(
                quality,
                "| {} | {s} | {} | {} | {ratio} | {} | {} | {} | {} |",
                label,
                b(ours).map_or("-".to_owned(), |v| v.to_string()),
                b(vips3).map_or("-".to_owned(), |v| v.to_string()),
                p(ours),
                p(vips3),
                b(pillow3).map_or("-".to_owned(), |v| v.to_string()),
                p(pillow3),
            )
            .unwrap();
        }
        // Targets are for the full-size images; quick runs only check that everything runs.
        if let (Some(o), Some(v), false) = (ours, vips_ms, a.quick) {
            let ratio = median(&o.walls) / v;
            let (target, extra) = match image.file {
                "p24.jpg" => (
                    1.0,
                    format!("; peak RSS {:.1} MB (target < 40)", o.peak_rss as f64 / 1e6),
                ),
                "p12.png" => (0.6, String::new()),
                _ => (1.0, String::new()),
            };
            writeln!(
                verdicts,
                "- {}: ours (3 sizes) {:.0} ms vs vipsthumbnail (one 256) {:.0} ms = {ratio:.2}x \
                 (target <= {target}){extra}",
                label,
                median(&o.walls),
                v
            )
            .unwrap();
        }
    }
    writeln!(
        report,
        "\nOutput size and quality per thumbnail (PSNR against a Lanczos3 resize of the \
         full-resolution decode, oriented, at the output's size):\n"
    )
    .unwrap();
    writeln!(
        report,
        "| image | box | ours bytes | vips bytes | ours/vips | ours PSNR dB | vips PSNR dB | Pillow bytes | Pillow PSNR dB |"
    )
    .unwrap();
    writeln!(report, "|---|---|---|---|---|---|---|---|---|").unwrap();
    report.push_str(&quality);
    if !verdicts.is_empty() {
        writeln!(report, "\nTargets:\n\n{verdicts}").unwrap();
    }
    print!("{report}");
    if let Some(out) = &a.out {
        std::fs::write(out, &report).map_err(|e| format!("{}: {e}", out.display()))?;
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n"))
    }
}

/// Below any good thumbnail measured (23-34 dB, ours and vips alike, the 64 px ones lowest); a wrong
/// one (blank, mis-oriented, another image) is compared pixel by pixel with the reference resized to
/// its dimensions and should land far lower.
const MIN_PSNR_DB: f64 = 20.0;

/// "24.0 MP JPEG": from the real size, so that quick runs are not labelled as full ones.
fn label(path: &Path, image: &Image) -> String {
    let mp = image::image_dimensions(path).map_or(0.0, |(w, h)| f64::from(w) * f64::from(h) / 1e6);
    let rest = image
        .label
        .split_once(" MP ")
        .map_or(image.label, |(_, r)| r);
    format!("{mp:.1} MP {rest}")
}

/// The full-resolution image, oriented, from which exact-size Lanczos3 references are made.
struct Reference {
    full: RgbImage,
}

impl Reference {
    fn new(path: &Path) -> Result<Reference, String> {
        let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
        let mut reader = image::ImageReader::new(std::io::Cursor::new(&bytes[..]))
            .with_guessed_format()
            .map_err(|e| e.to_string())?;
        reader.no_limits();
        let mut decoder = reader.into_decoder().map_err(|e| e.to_string())?;
        let orientation = decoder.orientation().map_err(|e| e.to_string())?;
        let mut image = DynamicImage::from_decoder(decoder).map_err(|e| e.to_string())?;
        image.apply_orientation(orientation);
        Ok(Reference {
            full: image.into_rgb8(),
        })
    }

    fn psnr(&self, jpeg: &[u8]) -> Result<f64, String> {
        let got = image::load_from_memory_with_format(jpeg, ImageFormat::Jpeg)
            .map_err(|e| e.to_string())?
            .into_rgb8();
        let (w, h) = got.dimensions();
        let src = fir::images::ImageRef::new(
            self.full.width(),
            self.full.height(),
            self.full.as_raw(),
            fir::PixelType::U8x3,
        )
        .map_err(|e| e.to_string())?;
        let mut dst = fir::images::Image::new(w, h, fir::PixelType::U8x3);
        fir::Resizer::new()
            .resize(
                &src,
                &mut dst,
                &fir::ResizeOptions::new()
                    .resize_alg(fir::ResizeAlg::Convolution(fir::FilterType::Lanczos3)),
            )
            .map_err(|e| e.to_string())?;
        let se: f64 = dst
            .buffer()
            .iter()
            .zip(got.as_raw())
            .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
            .sum();
        let mse = se / dst.buffer().len() as f64;
        Ok(10.0 * (255.0f64 * 255.0 / mse.max(1e-12)).log10())
    }
}

/// Small photo-like images for the quick mode (CI smoke run): same names as the real ones.
fn gen_quick(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let mut seed = 42u32;
    let mut noise = move || {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        ((seed >> 24) as i32 - 128) / 16
    };
    let mut photo = |w: u32, h: u32| {
        RgbImage::from_fn(w, h, |x, y| {
            let fx = x as f32 / w as f32;
            let fy = y as f32 / h as f32;
            let b = 128.0 + 100.0 * (x as f32 / 60.0).sin() * (y as f32 / 40.0).cos();
            let px = [255.0 * fx, 255.0 * fy, b];
            image::Rgb(px.map(|v| (v as i32 + noise()).clamp(0, 255) as u8))
        })
    };
    let jpeg = |img: &RgbImage| -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        let mut e = jpeg_encoder::Encoder::new(&mut out, 90);
        e.set_sampling_factor(jpeg_encoder::SamplingFactor::R_4_2_0);
        e.encode(
            img.as_raw(),
            img.width() as u16,
            img.height() as u16,
            jpeg_encoder::ColorType::Rgb,
        )
        .map_err(|e| e.to_string())?;
        Ok(out)
    };
    let write = |name: &str, bytes: &[u8]| {
        std::fs::write(dir.join(name), bytes).map_err(|e| format!("{name}: {e}"))
    };
    write("p24.jpg", &jpeg(&photo(1800, 1200))?)?;
    let png = photo(1200, 900);
    let mut png_bytes = std::io::Cursor::new(Vec::new());
    png.write_to(&mut png_bytes, ImageFormat::Png)
        .map_err(|e| e.to_string())?;
    write("p12.png", png_bytes.get_ref())?;
    // EXIF orientation 6 in an APP1 segment right after SOI.
    let plain = jpeg(&png)?;
    let tiff: &[u8] = b"MM\0\x2a\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01\0\x06\0\0\0\0\0\0";
    let mut oriented = plain[..2].to_vec();
    oriented.extend_from_slice(&[0xFF, 0xE1]);
    oriented.extend_from_slice(&((2 + 6 + tiff.len()) as u16).to_be_bytes());
    oriented.extend_from_slice(b"Exif\0\0");
    oriented.extend_from_slice(tiff);
    oriented.extend_from_slice(&plain[2..]);
    write("p12_orient6.jpg", &oriented)?;
    println!("quick images in {}", dir.display());
    Ok(())
}
