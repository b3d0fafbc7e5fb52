use super::*;

/// Both of the proxy's sockets must be TCP_NODELAY; this is the service side.
#[tokio::test]
async fn proxy_connects_to_the_service_without_nagle() {
    let l = tokio::net::TcpListener::bind("[::1]:0").await.unwrap();
    let target = Target::Tcp(l.local_addr().unwrap());
    match connect(&target).await.unwrap() {
        proxy::Stream::Tcp(s) => assert!(s.nodelay().unwrap()),
        proxy::Stream::Unix(_) => panic!("a tcp target gives a tcp stream"),
    }
}

fn services(toml: &str) -> Services {
    build_services(&Config::from_toml(toml).unwrap()).unwrap()
}

fn desc(stack: &str, service: &str) -> LayerDescriptor {
    LayerDescriptor {
        layers: stack.split('+').map(|w| w.parse().unwrap()).collect(),
        service: service.to_owned(),
    }
}

#[test]
fn token_bucket_bounds_bursts_and_refills() {
    let b = SharedBucket::new(10, 20);
    let t0 = std::time::Instant::now();
    assert_eq!(
        (0..100).filter(|_| b.take(t0)).count(),
        20,
        "burst = 2 * rate"
    );
    assert!(!b.take(t0));
    let later = t0 + std::time::Duration::from_millis(500);
    assert_eq!(
        (0..100).filter(|_| b.take(later)).count(),
        5,
        "0.5 s refills 5"
    );
}

#[test]
fn lookup_decides_per_layer() {
    let s = services(
        "[services.web]\nmode = \"proxy\"\ntarget = \"tcp:[::1]:80\"\nlayers = [\"tcp+http\", \"tcp+tls+http\"]\n\
         [services.resolver]\nmode = \"udp\"\ntarget = \"[::1]:53\"\nlayers = [\"udp+dns\"]\n",
    );
    assert_eq!(
        lookup(&s, &desc("tcp+tls+http", "web"), Layer::Tcp)
            .unwrap()
            .service
            .name,
        "web"
    );
    assert_eq!(
        lookup(&s, &desc("udp+dns", "resolver"), Layer::Udp)
            .unwrap()
            .service
            .name,
        "resolver"
    );

    let e = lookup(&s, &desc("tcp+http", "nope"), Layer::Tcp).unwrap_err();
    assert_eq!((e.0, e.1), (ReportLayer::Service, Reason::UnknownService));

    let e = lookup(&s, &desc("tcp+h2", "web"), Layer::Tcp).unwrap_err();
    assert_eq!((e.0, e.1), (ReportLayer::Service, Reason::LayerMismatch));
    assert_eq!(
        e.2,
        "service `web` accepts tcp+http, tcp+tls+http but the client asked for tcp+h2"
    );

    // A prefix of an accepted stack is not accepted: stacks match exactly.
    let e = lookup(&s, &desc("tcp", "web"), Layer::Tcp).unwrap_err();
    assert_eq!(e.1, Reason::LayerMismatch);

    // The descriptor says udp but the request came over TCP: the transport layer is wrong.
    let e = lookup(&s, &desc("udp+dns", "resolver"), Layer::Tcp).unwrap_err();
    assert_eq!(
        (e.0, e.1),
        (ReportLayer::Layer(Layer::Tcp), Reason::LayerMismatch)
    );
    assert!(e.2.contains("arrived over tcp"), "{}", e.2);
    // A UDP service asked for over TCP with a tcp stack: not among its stacks.
    let e = lookup(&s, &desc("tcp+dns", "resolver"), Layer::Tcp).unwrap_err();
    assert_eq!((e.0, e.1), (ReportLayer::Service, Reason::LayerMismatch));
}

/// The probe answer's Direct Port: only for the service that has one, only for layers it
/// accepts, never for UDP stacks.
#[test]
fn direct_port_is_advertised_only_for_matching_tcp_requests() {
    let s = services(
        "[services.web]\nmode = \"proxy\"\ntarget = \"tcp:[::1]:80\"\nlayers = [\"tcp+http\"]\ndirect_port = 8080\n\
         [services.plain]\nmode = \"handoff\"\nlayers = [\"tcp+http\"]\n\
         [services.resolver]\nmode = \"udp\"\ntarget = \"[::1]:53\"\nlayers = [\"udp+dns\"]\n",
    );
    assert_eq!(udp::direct_port(&s, &desc("tcp+http", "web")), Some(8080));
    assert_eq!(udp::direct_port(&s, &desc("tcp+h2", "web")), None);
    assert_eq!(udp::direct_port(&s, &desc("tcp+http", "plain")), None);
    assert_eq!(udp::direct_port(&s, &desc("tcp+http", "nope")), None);
    assert_eq!(udp::direct_port(&s, &desc("udp+dns", "resolver")), None);
}

#[test]
fn a_reload_names_what_changed_and_refuses_settings_fixed_at_start() {
    let parse = |t: &str| -> Config {
        let c: crate::config::Config = toml::from_str(t).unwrap();
        c.final_hop.unwrap()
    };
    let old = parse(
        "[final_hop]\n[final_hop.services.a]\nmode = \"handoff\"\nlayers = [\"tcp\"]\n\
         [final_hop.services.b]\nmode = \"handoff\"\nlayers = [\"tcp\"]\n\
         [final_hop.services.c]\nmode = \"handoff\"\nlayers = [\"tcp\"]\n",
    );
    let new = parse(
        "[final_hop]\n[final_hop.services.a]\nmode = \"handoff\"\nlayers = [\"tcp\"]\n\
         [final_hop.services.b]\nmode = \"handoff\"\nlayers = [\"tcp+http\"]\n\
         [final_hop.services.d]\nmode = \"handoff\"\nlayers = [\"tcp\"]\n",
    );
    let d = super::services_changed(&old.services, &new.services);
    assert_eq!(d.added, ["d"]);
    assert_eq!(d.changed, ["b"]);
    assert_eq!(d.removed, ["c"]);
    assert_eq!(super::fixed_setting_changed(&old, &new), None);
    let moved = parse("[final_hop]\nlisten = \"[::]:9\"\n");
    assert_eq!(super::fixed_setting_changed(&old, &moved), Some("listen"));
}
