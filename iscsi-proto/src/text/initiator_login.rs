//! RFC 7143 sections 6.3, 11.12-11.13 and 12: the initiator side of a login, as a sans-IO
//! state machine that produces Login Requests and consumes Login Responses.
//!
//! Without CHAP the login starts in the operational stage (CSG 1), offering the operational keys
//! and asking to transit to the full feature phase. With CHAP it starts in the security stage
//! (CSG 0) asking to transit to the operational stage with `AuthMethod=CHAP,None` (only `CHAP`
//! when mutual CHAP is configured), runs the CHAP exchange of RFC 7143 section 12.1.3, then
//! negotiates the operational keys.

use super::chap::{
    check_challenge, decode_binary, encode_binary, format_algorithm_list, new_challenge,
    parse_identifier, verify_response, ChapAlgorithm, ChapCredentials,
};
use super::error::{ChapError, LoginError, TextError};
use super::keys::is_security_key;
use super::kv::{encode_text, find, KeyValue, TextAccumulator};
use super::login::{
    is_redirect, is_success, valid_transition, LoginRequestHeader, LoginRequestParts,
    LoginResponseHeader, Stage, ISCSI_VERSION, MAX_LOGIN_ROUNDS,
};
use super::negotiate::{
    NegotiationPhase, Negotiator, OperationalOffers, Role, SessionParams, SessionType,
    DISCOVERY_SESSION_KEYS, NORMAL_SESSION_KEYS,
};

/// CHAP settings of an initiator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitiatorChapConfig {
    /// Our CHAP_N and secret.
    pub credentials: ChapCredentials,
    /// For mutual CHAP: the secret the target must prove (and, if set, the CHAP_N it must
    /// use). With this set, the login fails unless the target authenticates itself.
    pub mutual: Option<MutualChap>,
    /// Algorithms offered in CHAP_A, in preference order; empty means
    /// [`ChapAlgorithm::INITIATOR_DEFAULT`].
    pub algorithms: Vec<ChapAlgorithm>,
}

/// What the target must prove in mutual CHAP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MutualChap {
    pub expected_name: Option<String>,
    pub secret: Vec<u8>,
}

/// Everything an initiator needs to log in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitiatorConfig {
    pub initiator_name: String,
    pub initiator_alias: Option<String>,
    /// Required for normal sessions; ignored for discovery sessions.
    pub target_name: Option<String>,
    pub session_type: SessionType,
    pub isid: [u8; 6],
    /// 0 for a new session.
    pub tsih: u16,
    pub chap: Option<InitiatorChapConfig>,
    pub offers: OperationalOffers,
}

impl InitiatorConfig {
    /// A normal session to `target_name`, no CHAP, default offers.
    pub fn normal(
        initiator_name: impl Into<String>,
        target_name: impl Into<String>,
        isid: [u8; 6],
    ) -> InitiatorConfig {
        InitiatorConfig {
            initiator_name: initiator_name.into(),
            initiator_alias: None,
            target_name: Some(target_name.into()),
            session_type: SessionType::Normal,
            isid,
            tsih: 0,
            chap: None,
            offers: OperationalOffers::default(),
        }
    }

    /// A discovery session, no CHAP, default offers.
    pub fn discovery(initiator_name: impl Into<String>, isid: [u8; 6]) -> InitiatorConfig {
        InitiatorConfig {
            session_type: SessionType::Discovery,
            target_name: None,
            ..InitiatorConfig::normal(initiator_name, "", isid)
        }
    }
}

/// The result of a successful login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginOutcome {
    pub params: SessionParams,
    /// The TSIH the target assigned.
    pub tsih: u16,
}

/// What to do after a response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InitiatorStep {
    /// Send this request and feed the response to [`InitiatorLogin::step`].
    Send(LoginRequestParts),
    /// The connection is in the full feature phase.
    Complete(Box<LoginOutcome>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Auth {
    /// AuthMethod offered, no answer yet.
    Offered,
    /// AuthMethod=CHAP agreed, CHAP_A sent.
    AlgorithmSent,
    /// CHAP_R sent; with mutual CHAP, our challenge waits for the target's answer.
    ResponseSent {
        algorithm: ChapAlgorithm,
        mutual: Option<(u8, Vec<u8>)>,
    },
    /// Authentication finished.
    Done,
}

/// The initiator side of one login. See the module docs.
#[derive(Debug)]
pub struct InitiatorLogin {
    config: InitiatorConfig,
    stage: Stage,
    /// Whether our last request set T (and to which stage).
    asked: Option<Stage>,
    auth: Auth,
    negotiator: Negotiator,
    accumulator: TextAccumulator,
    rounds: usize,
    params: SessionParams,
    finished: bool,
}

impl InitiatorLogin {
    /// A login with this configuration; call [`InitiatorLogin::start`] for the first request.
    pub fn new(config: InitiatorConfig) -> InitiatorLogin {
        let negotiator = Negotiator::new(Role::Initiator, config.offers.clone());
        let params = SessionParams {
            session_type: config.session_type,
            initiator_name: config.initiator_name.clone(),
            initiator_alias: config.initiator_alias.clone(),
            target_name: match config.session_type {
                SessionType::Normal => config.target_name.clone(),
                SessionType::Discovery => None,
            },
            ..SessionParams::default()
        };
        InitiatorLogin {
            config,
            stage: Stage::SECURITY_NEGOTIATION,
            asked: None,
            auth: Auth::Offered,
            negotiator,
            accumulator: TextAccumulator::default(),
            rounds: 0,
            params,
            finished: false,
        }
    }

    fn request(&mut self, transit_to: Option<Stage>, pairs: &[KeyValue]) -> LoginRequestParts {
        self.asked = transit_to;
        LoginRequestParts {
            header: LoginRequestHeader {
                transit: transit_to.is_some(),
                cont: false,
                csg: self.stage,
                nsg: transit_to.unwrap_or(Stage(0)),
                version_max: ISCSI_VERSION,
                version_min: ISCSI_VERSION,
                isid: self.config.isid,
                tsih: self.config.tsih,
            },
            text: encode_text(pairs),
        }
    }

    /// The first Login Request.
    pub fn start(&mut self) -> LoginRequestParts {
        let mut pairs = vec![KeyValue::new(
            "InitiatorName",
            self.config.initiator_name.clone(),
        )];
        if let Some(alias) = &self.config.initiator_alias {
            pairs.push(KeyValue::new("InitiatorAlias", alias.clone()));
        }
        if self.config.session_type == SessionType::Normal {
            pairs.push(KeyValue::new(
                "TargetName",
                self.config.target_name.clone().unwrap_or_default(),
            ));
        }
        pairs.push(KeyValue::new(
            "SessionType",
            self.config.session_type.as_str(),
        ));
        let methods = match &self.config.chap {
            None => {
                // Nothing to authenticate with: straight to the operational stage (RFC 7143
                // section 6.3.2), saving a round trip, as libiscsi does.
                self.stage = Stage::LOGIN_OPERATIONAL_NEGOTIATION;
                self.auth = Auth::Done;
                pairs.extend(self.negotiator.offer(self.operational_keys()));
                return self.request(Some(Stage::FULL_FEATURE_PHASE), &pairs);
            }
            Some(c) if c.mutual.is_some() => "CHAP",
            Some(_) => "CHAP,None",
        };
        pairs.push(KeyValue::new("AuthMethod", methods));
        self.auth = Auth::Offered;
        self.request(Some(Stage::LOGIN_OPERATIONAL_NEGOTIATION), &pairs)
    }

    fn operational_keys(&self) -> &'static [&'static str] {
        match self.config.session_type {
            SessionType::Normal => NORMAL_SESSION_KEYS,
            SessionType::Discovery => DISCOVERY_SESSION_KEYS,
        }
    }

    /// The session parameters known so far.
    pub fn params(&self) -> &SessionParams {
        &self.params
    }

    /// Handles one Login Response (header fields and its data segment).
    pub fn step(
        &mut self,
        resp: &LoginResponseHeader,
        data: &[u8],
    ) -> Result<InitiatorStep, LoginError> {
        if self.finished {
            return Err(LoginError::Finished);
        }
        let r = self.step_inner(resp, data);
        if r.is_err() {
            self.finished = true;
        }
        r
    }

    fn step_inner(
        &mut self,
        resp: &LoginResponseHeader,
        data: &[u8],
    ) -> Result<InitiatorStep, LoginError> {
        self.rounds += 1;
        if self.rounds > MAX_LOGIN_ROUNDS {
            return Err(LoginError::TooManyRounds {
                limit: MAX_LOGIN_ROUNDS,
            });
        }
        if !is_success(resp.status) {
            if is_redirect(resp.status) {
                let address = crate::text::kv::parse_text(data)
                    .ok()
                    .and_then(|p| find(&p, "TargetAddress").map(str::to_string));
                return Err(LoginError::Redirected {
                    status: resp.status,
                    address,
                });
            }
            return Err(LoginError::Rejected {
                status: resp.status,
            });
        }
        if resp.version_active != ISCSI_VERSION {
            return Err(LoginError::UnsupportedVersion {
                min: resp.version_active,
                max: resp.version_max,
            });
        }
        if resp.transit && resp.cont {
            return Err(LoginError::TransitAndContinue);
        }
        if resp.csg != self.stage {
            return Err(LoginError::UnexpectedStage {
                expected: self.stage,
                got: resp.csg,
            });
        }
        if resp.transit {
            if self.asked.is_none() {
                return Err(LoginError::UnrequestedTransit);
            }
            if !valid_transition(resp.csg, resp.nsg) {
                return Err(LoginError::InvalidTransition {
                    csg: resp.csg,
                    nsg: resp.nsg,
                });
            }
        }
        self.accumulator.push(data)?;
        if resp.cont {
            // The target has more text: ask for it with an empty request (RFC 7143 11.13.3).
            return Ok(InitiatorStep::Send(self.request(None, &[])));
        }
        let pairs = self.accumulator.finish()?;
        let mut out: Vec<KeyValue> = Vec::new();
        let mut security: Vec<&KeyValue> = Vec::new();
        let mut operational: Vec<KeyValue> = Vec::new();
        for kv in &pairs {
            match kv.key.as_str() {
                "TargetPortalGroupTag" => {
                    let tag = super::keys::parse_number(&kv.value)
                        .and_then(|n| u16::try_from(n).ok())
                        .ok_or_else(|| TextError::InvalidValue {
                            key: kv.key.clone(),
                            value: kv.value.clone(),
                        })?;
                    self.params.target_portal_group_tag = Some(tag);
                }
                "TargetAlias" => self.params.target_alias = Some(kv.value.clone()),
                "TargetAddress" => {}
                k if is_security_key(k) => security.push(kv),
                _ => operational.push(kv.clone()),
            }
        }
        if self.stage == Stage::SECURITY_NEGOTIATION {
            out.extend(self.authenticate(&security)?);
        } else if let Some(kv) = security.first() {
            return Err(TextError::WrongPhase {
                key: kv.key.clone(),
                phase: "operational stage",
            }
            .into());
        }
        out.extend(
            self.negotiator
                .process(&operational, NegotiationPhase::Login)?,
        );
        if resp.transit {
            if self.stage == Stage::SECURITY_NEGOTIATION {
                self.leave_security()?;
            }
            self.stage = resp.nsg;
            if self.stage == Stage::FULL_FEATURE_PHASE {
                return Ok(InitiatorStep::Complete(Box::new(self.complete(resp.tsih))));
            }
            // Entering the operational stage: our offers.
            out.extend(self.negotiator.offer(self.operational_keys()));
            return Ok(InitiatorStep::Send(
                self.request(Some(Stage::FULL_FEATURE_PHASE), &out),
            ));
        }
        let transit_to = if self.stage == Stage::SECURITY_NEGOTIATION {
            match self.auth {
                Auth::AlgorithmSent => None,
                _ => Some(Stage::LOGIN_OPERATIONAL_NEGOTIATION),
            }
        } else {
            Some(Stage::FULL_FEATURE_PHASE)
        };
        Ok(InitiatorStep::Send(self.request(transit_to, &out)))
    }

    fn leave_security(&mut self) -> Result<(), LoginError> {
        match &self.auth {
            Auth::Done => Ok(()),
            Auth::Offered if self.config.chap.as_ref().is_none_or(|c| c.mutual.is_none()) => {
                // The target skipped AuthMethod: no authentication (RFC 7143 section 13.19
                // default None), acceptable unless we insisted on mutual CHAP.
                self.auth = Auth::Done;
                Ok(())
            }
            Auth::ResponseSent { mutual: None, .. } => {
                self.auth = Auth::Done;
                Ok(())
            }
            Auth::ResponseSent {
                mutual: Some(_), ..
            } => Err(ChapError::MutualMissing.into()),
            _ => Err(LoginError::AuthenticationRequired),
        }
    }

    fn complete(&mut self, tsih: u16) -> LoginOutcome {
        self.finished = true;
        let mut p = self.negotiator.finish();
        p.session_type = self.params.session_type;
        p.initiator_name = self.params.initiator_name.clone();
        p.initiator_alias = self.params.initiator_alias.clone();
        p.target_name = self.params.target_name.clone();
        p.target_alias = self.params.target_alias.clone();
        p.target_portal_group_tag = self.params.target_portal_group_tag;
        self.params = p.clone();
        LoginOutcome { params: p, tsih }
    }

    fn authenticate(&mut self, keys: &[&KeyValue]) -> Result<Vec<KeyValue>, LoginError> {
        let get = |k: &str| {
            keys.iter()
                .find(|kv| kv.key == k)
                .map(|kv| kv.value.as_str())
        };
        let mut out = Vec::new();
        match self.auth.clone() {
            Auth::Offered => {
                let Some(method) = get("AuthMethod") else {
                    return Ok(out);
                };
                match (method, &self.config.chap) {
                    ("None", Some(c)) if c.mutual.is_some() => {
                        return Err(LoginError::NoAuthMethod {
                            offered: method.to_string(),
                        })
                    }
                    ("None", _) => self.auth = Auth::Done,
                    ("CHAP", Some(c)) => {
                        let algorithms = offered_algorithms(c);
                        out.push(KeyValue::new("CHAP_A", format_algorithm_list(&algorithms)));
                        self.auth = Auth::AlgorithmSent;
                    }
                    _ => {
                        return Err(LoginError::NoAuthMethod {
                            offered: method.to_string(),
                        })
                    }
                }
            }
            Auth::AlgorithmSent => {
                let c = self
                    .config
                    .chap
                    .as_ref()
                    .ok_or(LoginError::AuthenticationRequired)?;
                let a = get("CHAP_A").ok_or(ChapError::MissingKey { key: "CHAP_A" })?;
                let algorithm = super::keys::parse_number(a)
                    .and_then(|n| u8::try_from(n).ok())
                    .map(ChapAlgorithm)
                    .filter(|alg| alg.is_supported() && offered_algorithms(c).contains(alg))
                    .ok_or_else(|| ChapError::UnofferedAlgorithm {
                        value: a.to_string(),
                    })?;
                let id = parse_identifier(
                    get("CHAP_I").ok_or(ChapError::MissingKey { key: "CHAP_I" })?,
                )?;
                let challenge =
                    decode_binary(get("CHAP_C").ok_or(ChapError::MissingKey { key: "CHAP_C" })?)?;
                check_challenge(&challenge)?;
                let response = algorithm
                    .response(id, &c.credentials.secret, &challenge)
                    .ok_or(ChapError::UnofferedAlgorithm {
                        value: a.to_string(),
                    })?;
                out.push(KeyValue::new("CHAP_N", c.credentials.name.clone()));
                out.push(KeyValue::new("CHAP_R", encode_binary(&response)));
                let mutual = if c.mutual.is_some() {
                    let (mut my_id, mut my_challenge) = new_challenge(algorithm);
                    while my_challenge == challenge {
                        (my_id, my_challenge) = new_challenge(algorithm);
                    }
                    out.push(KeyValue::new("CHAP_I", my_id.to_string()));
                    out.push(KeyValue::new("CHAP_C", encode_binary(&my_challenge)));
                    Some((my_id, my_challenge))
                } else {
                    None
                };
                self.auth = Auth::ResponseSent { algorithm, mutual };
            }
            Auth::ResponseSent { algorithm, mutual } => {
                let Some((id, challenge)) = mutual else {
                    if let Some(kv) = keys.first() {
                        return Err(ChapError::UnexpectedKey {
                            key: kv.key.clone(),
                        }
                        .into());
                    }
                    self.auth = Auth::Done;
                    return Ok(out);
                };
                let expected = self
                    .config
                    .chap
                    .as_ref()
                    .and_then(|c| c.mutual.clone())
                    .ok_or(ChapError::MutualMissing)?;
                if get("CHAP_N").is_none() && get("CHAP_R").is_none() {
                    return Err(ChapError::MutualMissing.into());
                }
                let name = get("CHAP_N").ok_or(ChapError::MissingKey { key: "CHAP_N" })?;
                let response =
                    decode_binary(get("CHAP_R").ok_or(ChapError::MissingKey { key: "CHAP_R" })?)?;
                if let Some(want) = &expected.expected_name {
                    if want != name {
                        return Err(ChapError::UnknownName {
                            name: name.to_string(),
                        }
                        .into());
                    }
                }
                verify_response(algorithm, id, &expected.secret, &challenge, &response)?;
                self.auth = Auth::Done;
            }
            Auth::Done => {
                if let Some(kv) = keys.first() {
                    return Err(ChapError::UnexpectedKey {
                        key: kv.key.clone(),
                    }
                    .into());
                }
            }
        }
        Ok(out)
    }
}

/// The CHAP_A list an initiator offers.
fn offered_algorithms(c: &InitiatorChapConfig) -> Vec<ChapAlgorithm> {
    if c.algorithms.is_empty() {
        ChapAlgorithm::INITIATOR_DEFAULT.to_vec()
    } else {
        c.algorithms.clone()
    }
}
