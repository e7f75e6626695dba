//! A small flag parser: `--name value` pairs and bare `--switch`es, nothing else.

use std::collections::HashMap;
use std::str::FromStr;

pub struct Args {
    values: HashMap<String, Vec<String>>,
    switches: Vec<String>,
}

impl Args {
    /// `switches` are the flags that take no value; every other `--flag` takes one.
    pub fn parse(argv: Vec<String>, switches: &[&str], usage: &str) -> Result<Args, String> {
        let mut args = Args {
            values: HashMap::new(),
            switches: Vec::new(),
        };
        let mut it = argv.into_iter();
        while let Some(flag) = it.next() {
            let Some(name) = flag.strip_prefix("--") else {
                return Err(format!("unexpected argument {flag}\n{usage}"));
            };
            if name == "help" {
                return Err(usage.to_string());
            }
            if switches.contains(&name) {
                args.switches.push(name.to_string());
                continue;
            }
            let value = it
                .next()
                .ok_or_else(|| format!("--{name} needs a value\n{usage}"))?;
            args.values.entry(name.to_string()).or_default().push(value);
        }
        Ok(args)
    }

    pub fn switch(&self, name: &str) -> bool {
        self.switches.iter().any(|s| s == name)
    }

    pub fn all(&self, name: &str) -> &[String] {
        self.values.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Every `--name NAME=PATH` given: a label and a program file that exists.
    pub fn programs(&self, name: &str) -> Result<Vec<(String, std::path::PathBuf)>, String> {
        self.all(name)
            .iter()
            .map(|spec| {
                let (label, path) = spec
                    .split_once('=')
                    .ok_or_else(|| format!("--{name} {spec}: expected NAME=PATH"))?;
                let program = std::path::PathBuf::from(path);
                if !program.is_file() {
                    return Err(format!("--{name} {label}: no file {path}"));
                }
                Ok((label.to_string(), program))
            })
            .collect()
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.all(name).last().map(String::as_str)
    }

    pub fn required(&self, name: &str) -> Result<&str, String> {
        self.get(name)
            .ok_or_else(|| format!("--{name} is required"))
    }

    pub fn number<T: FromStr>(&self, name: &str, default: T) -> Result<T, String>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|e| format!("--{name} {v}: {e}")),
        }
    }
}
