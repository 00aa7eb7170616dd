//! Unit tests of `cidr`.
use super::*;

#[test]
fn contains() {
    let c: Cidr = "10.1.0.0/16".parse().unwrap();
    assert!(c.contains("10.1.200.3".parse().unwrap()));
    assert!(!c.contains("10.2.0.1".parse().unwrap()));
    assert!(c.contains("::ffff:10.1.0.9".parse().unwrap()));
    let c: Cidr = "192.168.1.128/25".parse().unwrap();
    assert!(c.contains("192.168.1.200".parse().unwrap()));
    assert!(!c.contains("192.168.1.100".parse().unwrap()));
    let c: Cidr = "fd00::/8".parse().unwrap();
    assert!(c.contains("fd12::1".parse().unwrap()));
    assert!(!c.contains("10.0.0.1".parse().unwrap()));
    let all: Cidr = "0.0.0.0/0".parse().unwrap();
    assert!(all.contains("8.8.8.8".parse().unwrap()));
    assert_eq!("1.2.3.4/33".parse::<Cidr>(), Err(ParseError::Prefix));
    assert_eq!("1.2.3.4".parse::<Cidr>(), Err(ParseError::Prefix));
    assert_eq!("x/3".parse::<Cidr>(), Err(ParseError::Ip));
    let list: NetRestrict = "10.0.0.0/8, 127.0.0.0/8".parse().unwrap();
    assert!(list.contains("127.0.0.1".parse().unwrap()));
    assert!(!list.contains("11.0.0.1".parse().unwrap()));
    assert_eq!(list.0[0].to_string(), "10.0.0.0/8");
}
