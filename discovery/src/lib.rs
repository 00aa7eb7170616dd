//! Node Discovery v4.

pub mod cidr;
pub mod config;
mod limits;
pub mod lookup;
pub mod proto;
pub mod table;
pub mod enr;
pub mod node;
pub mod packet;
mod rlp;
