#![allow(dead_code, unreachable_pub)] // Each test file uses a different part.

pub mod dns;
