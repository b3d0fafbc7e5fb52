use super::*;

/// Every shipped topology loads, and every file its processes name under `{dir}` (a
/// config, a template) exists: a process must not fail to start because a file was never
/// added.
#[test]
fn shipped_topologies_name_only_files_that_exist() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dirs = [
        "testbed/topologies",
        "benches/topologies",
        "forwarder/tests/topologies",
        "encoder/client/tests/topologies",
        "trace/tests/topologies",
    ];
    let mut checked = 0;
    for d in dirs {
        let Ok(entries) = std::fs::read_dir(root.join(d)) else {
            continue;
        };
        for e in entries.flatten() {
            let file = e.path();
            if file.extension().is_none_or(|x| x != "toml") {
                continue;
            }
            let topo =
                Topology::load(&file).unwrap_or_else(|err| panic!("{}: {err}", file.display()));
            let dir = file.parent().unwrap();
            for n in &topo.nodes {
                for p in &n.process {
                    let named = p
                        .cmd
                        .iter()
                        .filter_map(|a| a.strip_prefix("{dir}/"))
                        .chain(p.templates.values().map(|t| t.trim_start_matches("{dir}/")));
                    for rel in named {
                        assert!(
                            dir.join(rel).exists(),
                            "{}: process `{}/{}` names {rel}, which does not exist",
                            file.display(),
                            n.name,
                            p.name
                        );
                        checked += 1;
                    }
                }
            }
        }
    }
    assert!(
        checked >= 8,
        "only {checked} files checked: the directories moved?"
    );
}

const MINI: &str = r#"
name = "mini"
[[networks]]
name = "net"
dns = { node = "a", address = "fd00:53::1" }
records = { "b" = ["fd00:1::2"] }
[[nodes]]
name = "a"
network = "net"
[[nodes]]
name = "b"
srv6 = [{ sid = "fc00::e/128", action = "End" }, { prefix = "fd00:9::/64", segments = ["fc00::1"] }]
[[links]]
a = { node = "a", addrs = ["fd00:1::1/64"] }
b = { node = "b", ifname = "up0", addrs = ["fd00:1::2/64"] }
[[links]]
a = { node = "a" }
b = { node = "b" }
"#;

#[test]
fn default_ifnames_are_per_node_in_file_order() {
    let t = Topology::parse(MINI).unwrap();
    assert_eq!(t.links[0].a.ifname.as_deref(), Some("eth0"));
    assert_eq!(t.links[0].b.ifname.as_deref(), Some("up0"));
    assert_eq!(t.links[1].a.ifname.as_deref(), Some("eth1"));
    assert_eq!(t.links[1].b.ifname.as_deref(), Some("eth0"));
}

#[test]
fn srv6_entries_become_iproute2_arguments() {
    let t = Topology::parse(MINI).unwrap();
    let b = t.node("b").unwrap();
    assert_eq!(
        srv6_route_args("x", &b.srv6[0], "up0").unwrap(),
        "fc00::e/128 encap seg6local action End dev up0"
    );
    assert_eq!(
        srv6_route_args("x", &b.srv6[1], "up0").unwrap(),
        "fd00:9::/64 encap seg6 mode encap segs fc00::1 dev up0"
    );
}

#[test]
fn errors_name_the_place() {
    let e = Topology::parse(&MINI.replace("node = \"b\", ifname", "node = \"zz\", ifname"))
        .unwrap_err();
    assert_eq!(e.to_string(), "links[0].b.node: no node named `zz`");
    let e = Topology::parse(&MINI.replace("fd00:1::2/64", "fd00:1::2")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "links[0].b.addrs[0]: `fd00:1::2` is not valid: `addr/len`, the prefix length is missing"
    );
    let e = Topology::parse(&MINI.replace("up0", "a-very-long-name0")).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("links[0].b.ifname: `a-very-long-name0`"),
        "{e}"
    );
    let e = Topology::parse(
        &MINI.replace("action = \"End\"", "action = \"End\", segments = [\"::1\"]"),
    )
    .unwrap_err();
    assert!(e.to_string().starts_with("nodes[1].srv6[0]: "), "{e}");
    let e = Topology::parse(&MINI.replace("network = \"net\"", "network = \"nope\"")).unwrap_err();
    assert_eq!(e.to_string(), "nodes[0].network: no network named `nope`");
    let e = Topology::parse(&MINI.replace(
        "[[links]]\na = { node = \"a\" }",
        "[[links]]\na = { node = \"a\", ifname = \"eth0\" }",
    ))
    .unwrap_err();
    assert_eq!(e.to_string(), "links[1].a.ifname: duplicate name `a:eth0`");
    let e = Topology::parse(&MINI.replace("name = \"mini\"", "name = \"mini\"\nbogus = 1"))
        .unwrap_err();
    assert!(e.to_string().contains("unknown field `bogus`"), "{e}");
}

#[test]
fn shipped_topologies_parse() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies");
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            Topology::load(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            n += 1;
        }
    }
    assert!(
        n >= 3,
        "expected at least three shipped topologies, found {n}"
    );
}
